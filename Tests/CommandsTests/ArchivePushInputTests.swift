import Foundation
import Testing
import Storage
import TestSupport
import WALFormat
import Codec
@testable import Commands

/// Issue 12 (archive-push input checks): damaged WAL is stored but never silently, special files are
/// refused without being opened, history files are validated against the repository, a re-push
/// heals a missing data object, and leftovers of interrupted writes are swept.
@Suite struct ArchivePushInputTests {
    let root: String
    let repository: Repository
    let info: RepositoryInfo

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-input-\(UUID().uuidString)").path
        repository = Repository(store: FileStore(root: root + "/repo"), url: "file://" + root + "/repo")
        info = RepositoryInfo(systemIdentifier: 7_712_321_645_893_095_454, walSegmentSize: WALSegmentSize.default.bytes,
                              pgVersion: 15, createdAt: PGTimestamp(microseconds: 0))
        try repository.bind(info)
        try FileManager.default.createDirectory(atPath: root + "/pg_wal/archive_status", withIntermediateDirectories: true)
    }

    func name(_ n: XLogSegNo) -> String { SegmentID(timeline: 1, segno: n).fileName(size: .default) }

    /// A sound segment `n` (ends with a switch); with `damageAt`, the LSN of a record whose byte is flipped.
    func segment(_ n: XLogSegNo, damaged: Bool = false) -> (bytes: [UInt8], victim: LSN) {
        var w = SyntheticWAL(firstSegment: n)
        w.appendCommit(time: PGTimestamp(microseconds: 848_980_022_115_455))
        let victim = w.appendFiller(size: 12_000)
        w.appendCommit(time: PGTimestamp(microseconds: 848_980_022_115_456))
        w.appendSwitch()
        var b = w.segment(0)
        if damaged { b[w.offset(of: victim) + 9000] ^= 0x01 }
        return (b, victim)
    }

    func write(_ bytes: [UInt8], _ path: String) throws -> String {
        let p = root + "/" + path
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    // MARK: damaged WAL

    @Test func damagedSegmentIsStoredWithAWarningAndRecorded() throws {
        let log = LogCapture()
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil, logger: log.logger)
        _ = try push.push(path: try write(segment(1).bytes, "in/" + name(1)))
        #expect(log.all.isEmpty, "\(log.all)")
        #expect(try repository.meta(for: .segment(name(1)))?.summary?.damagedAt == nil)

        let (bytes, victim) = segment(2, damaged: true)
        guard case .stored(let meta) = try push.push(path: try write(bytes, "in/" + name(2))) else { Issue.record("not stored"); return }
        #expect(meta.summary?.damagedAt == victim && meta.summary?.damageReason?.contains("CRC") == true)
        #expect(try repository.meta(for: .segment(name(2))) == meta)
        let warning = try #require(log.entries.first { $0.message.hasPrefix("WARNING: DAMAGED WAL in \(name(2))") })
        #expect(warning.message.contains("at \(victim)") && warning.level == .warning)
        // Stored as it is.
        _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: name(2), targetPath: root + "/back")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/back"))) == bytes)
    }

    /// Issue 15 (one reporting path): what `walctl archive-push` runs, `Archiver`, hands a module's
    /// warning to the logger the CLI gave it (`WalctlLog.make`: stderr, PostgreSQL's log), with its
    /// text and at warning. (Before, Archiver passed a `warn` closure down and the modules never
    /// saw the logger: a logger alone received nothing.)
    @Test func archiversWarningReachesTheCLIsLoggerAtWarning() throws {
        // The catalog in the test's directory: the default (/var/lib/walctl) does not exist on a fresh
        // machine, and its warning is not the one under test.
        let config = try Configuration.load(flags: ["repository": "file://" + root + "/repo", "catalog": root + "/catalog.db"],
                                            environment: [:], configPath: "/dev/null")
        let log = LogCapture()
        let (bytes, victim) = segment(5, damaged: true)
        guard case .stored = try Archiver(config: config, logger: log.logger).push(path: try write(bytes, "cli/" + name(5))) else {
            Issue.record("not stored"); return
        }
        let expected = ArchivePush.damageWarning(name: name(5), damage: WALDamage(lsn: victim, reason: try #require(try repository.meta(for: .segment(name(5)))?.summary?.damageReason)),
                                                 displayPath: root + "/cli/" + name(5))
        #expect(log.entries == [LogCapture.Entry(level: .warning, message: expected)], "\(log.entries)")
        // At log-level = error the same logger's handler drops it (the level is the handler's).
        let quiet = LogCapture(level: .error)
        _ = try Archiver(config: config, logger: quiet.logger).push(path: try write(segment(6, damaged: true).bytes, "cli/" + name(6)))
        #expect(quiet.entries.isEmpty, "\(quiet.entries)")
    }

    /// The background pusher logs through `WalctlLog.daemon`: the warning lands in the spool's
    /// daemon.log as one timestamped line.
    @Test func asyncPusherWarnsInItsLogAndRecordsTheDamage() throws {
        let (bytes, victim) = segment(3, damaged: true)
        _ = try write(bytes, "pg_wal/" + name(3))
        FileManager.default.createFile(atPath: root + "/pg_wal/archive_status/" + name(3) + ".ready", contents: nil)
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let e = PushEngine(pusher: ArchivePush(repository: repository, codec: .zstd, level: nil), info: info, spool: spool,
                           walDir: root + "/pg_wal", repositorySetting: "r", compressWorkers: 1, uploadWorkers: 1,
                           stageMax: 1 << 30, logger: try WalctlLog.daemon(level: "warning", logPath: spool.logPath))
        e.start()
        defer { e.stop() }
        e.submit(ReadyScanner.scan(walDir: root + "/pg_wal"))
        #expect(e.drain(timeout: 60))
        guard case .ok(let rec) = spool.result(name(3)) else { Issue.record("\(spool.result(name(3)))"); return }
        #expect(rec.meta.summary?.damagedAt == victim)
        let lines = (try String(contentsOfFile: spool.logPath, encoding: .utf8)).split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasSuffix(" walctl[\(getpid())]: " + ArchivePush.damageWarning(name: name(3), damage: WALDamage(lsn: victim, reason: rec.meta.summary?.damageReason ?? "?"), displayPath: root + "/pg_wal/" + name(3))), "\(lines)")
    }

    // MARK: special files

    @Test func specialFilesAreRefusedWithoutBeingOpened() throws {
        try FileManager.default.createDirectory(atPath: root + "/sp", withIntermediateDirectories: true)
        let fifo = root + "/sp/" + name(9)
        #expect(mkfifo(fifo, 0o600) == 0)
        let dir = root + "/sp/" + name(10)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let dev = root + "/sp/" + name(11)
        #expect(symlink("/dev/null", dev) == 0)
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil)
        for (path, kind) in [(fifo, "FIFO"), (dir, "directory"), (dev, "character device")] {
            do {
                _ = try push.push(path: path)
                Issue.record("\(path) pushed")
            } catch let e as WalctlError {
                #expect(e.code == "invalid-wal" && e.description.contains(kind), "\(e)")
            }
            #expect(throws: WalctlError.self) { _ = try ReadBuffer().load(path: path) }   // the async pusher's reader
        }
        #expect(try repository.listMetaKeys().isEmpty)
        // A symlink to a regular file is read.
        let real = try write(segment(12).bytes, "sp/real")
        #expect(symlink(real, root + "/sp/" + name(12)) == 0)
        guard case .stored = try push.push(path: root + "/sp/" + name(12)) else { Issue.record("symlinked segment refused"); return }
    }

    // MARK: history files

    @Test func historyParentsMustBeArchivedOrBesideTheFile() throws {
        let log = LogCapture()
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil, logger: log.logger)
        let h3 = Array("1\t0/3000000\tx\n2\t0/5000000\ty\n".utf8)
        do {
            _ = try push.push(path: try write(h3, "lonely/00000003.history"))
            Issue.record("history with an unarchived parent accepted")
        } catch let e as WalctlError {
            #expect(e.code == "invalid-wal" && e.description.contains("parent timeline 2"), "\(e)")
        }
        #expect(try repository.meta(for: .history(3)) == nil)
        // The parent beside it (as in pg_wal) is archived first.
        _ = try write(Array("1\t0/3000000\tx\n".utf8), "pg_wal/00000002.history")
        _ = try push.push(path: try write(h3, "pg_wal/00000003.history"))
        #expect(try repository.meta(for: .history(2)) != nil && repository.meta(for: .history(3)) != nil)
        #expect(log.all.contains { $0.contains("archiving") && $0.contains("00000002.history") })
    }

    @Test func backupHistoryMustMatchItsName() throws {
        let label = "START WAL LOCATION: 0/7000028 (file 000000010000000000000007)\nSTOP WAL LOCATION: 0/7000100 (file 000000010000000000000007)\n" +
                    "CHECKPOINT LOCATION: 0/7000060\nSTART TIMELINE: 1\nSTOP TIMELINE: 1\nLABEL: x\n"
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil)
        _ = try push.push(path: try write(Array(label.utf8), "b/000000010000000000000007.00000028.backup"))
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write(Array(label.utf8), "b/000000010000000000000007.00000030.backup")) }
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write(Array(label.utf8), "b/000000010000000000000008.00000028.backup")) }
    }

    // MARK: re-push heals

    @Test(arguments: [CodecKind.zstd, .gzip, .none])
    func rePushStoresAMissingObjectAgain(codec: CodecKind) throws {
        let bytes = segment(4).bytes
        let path = try write(bytes, "in/" + name(4))
        let log = LogCapture()
        let push = ArchivePush(repository: repository, codec: codec, level: nil, logger: log.logger)
        guard case .stored(let meta) = try push.push(path: path) else { Issue.record("not stored"); return }
        let key = try #require(meta.objectKey)
        try repository.store.delete(key: key)
        // Pushed again with another configured codec: the object is stored as the meta says.
        let other = ArchivePush(repository: repository, codec: codec == .zstd ? .gzip : .zstd, level: nil, logger: log.logger)
        #expect(try other.push(path: path) == .alreadyArchived(meta))
        #expect(try repository.store.head(key: key) != nil)
        #expect(log.all.contains { $0.contains("missing from the repository: stored it again") })
        _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: name(4), targetPath: root + "/back")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/back"))) == bytes)
        // Other bytes under the name: still a mismatch, nothing stored.
        try repository.store.delete(key: key)
        var changed = bytes
        changed[9000] ^= 1
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write(changed, "other/" + name(4))) }
        #expect(try repository.store.head(key: key) == nil)
    }

    // MARK: leftovers

    @Test func everySixteenthSegmentSweepsOldTemporaryObjects() throws {
        let dir = root + "/repo/wal/0000000100000000"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let old = [".\(name(0x11)).deadbeef.zst.tmp.4242.abc", ".\(name(0x11)).meta.tmp.4242.def"]
        let young = ".\(name(0x12)).meta.tmp.4243.ghi"
        for f in old + [young, ".keep"] { FileManager.default.createFile(atPath: dir + "/" + f, contents: Data([1, 2, 3])) }
        for f in old + [".keep"] {
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: dir + "/" + f)
        }
        let log = LogCapture()
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil, logger: log.logger)
        _ = try push.push(path: try write(segment(0x11).bytes, "in/" + name(0x11)))   // 17: no sweep
        #expect(old.allSatisfy { FileManager.default.fileExists(atPath: dir + "/" + $0) })
        _ = try push.push(path: try write(segment(0x20).bytes, "in/" + name(0x20)))   // 32: sweeps
        #expect(!old.contains { FileManager.default.fileExists(atPath: dir + "/" + $0) })
        #expect(FileManager.default.fileExists(atPath: dir + "/" + young) && FileManager.default.fileExists(atPath: dir + "/.keep"))
        #expect(log.all.contains { $0.contains("removed 2 temporary object(s) older than an hour") })
    }
}
