import Catalog
@testable import Commands
import Foundation
import Storage
import WALFormat
import XCTest

/// restore-backup of a file-level chain with its archives restored at once (issue 18): a synthetic
/// chain (a full backup and an incremental, each with a base archive and a tablespace archive) in a
/// file repository behind a store that can delay, watch and fail reads, so the order in which the
/// archives arrive is the test's to choose. No PostgreSQL needed.
final class ChainRestoreTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-chainpar-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/repo", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    // MARK: the chain

    enum Entry {
        case dir(String, UInt32)
        case file(String, UInt32, [UInt8])
        case link(String, String)
        var path: String {
            switch self { case .dir(let p, _), .file(let p, _, _), .link(let p, _): return p }
        }
    }

    static let tsLocation = "/srv/original-ts"
    static let big = [UInt8]((0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })

    /// The data directory both members describe (group access: directories 0750, files 0640).
    static func baseEntries(version: String) -> [Entry] {
        [.dir("global", 0o750), .dir("base", 0o750), .dir("base/1", 0o750), .dir("base/5", 0o750),
         .dir("base/5/deep", 0o750), .dir("pg_tblspc", 0o750), .link("pg_tblspc/16400", tsLocation),
         .file("PG_VERSION", 0o640, Array("15\n".utf8)),
         .file("global/pg_control", 0o600, Array("control \(version)".utf8)),
         .file("base/1/100", 0o640, big),
         .file("base/1/200", 0o640, Array("changed rows \(version)".utf8)),
         .file("base/5/deep/300", 0o640, Array(repeating: 3, count: 20_000)),
         .file("backup_label", 0o600, Array("label \(version)".utf8))]
    }

    static func tablespaceEntries(version: String) -> [Entry] {
        [.dir("PG_15_202209061", 0o750), .dir("PG_15_202209061/5", 0o750),
         .file("PG_15_202209061/5/400", 0o640, Array(repeating: 4, count: 300_000)),
         .file("PG_15_202209061/5/500", 0o640, Array("ts changed \(version)".utf8))]
    }

    /// What the incremental stores itself; everything else comes from F.
    static let storedByI: Set<String> = ["global/pg_control", "base/1/200", "backup_label", "pg_tblspc/16400/PG_15_202209061/5/500"]

    func tar(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        for e in entries {
            switch e {
            case .dir(let p, let m): out += TarWriter.header(path: p, kind: .directory, mode: m, size: 0, mtime: 1_700_000_000)
            case .link(let p, let t): out += TarWriter.header(path: p, kind: .symlink, mode: 0o777, size: 0, mtime: 1_700_000_000, linkTarget: t)
            case .file(let p, let m, let b):
                out += TarWriter.header(path: p, kind: .file, mode: m, size: Int64(b.count), mtime: 1_700_000_000)
                out += b + [UInt8](repeating: 0, count: TarWriter.padding(Int64(b.count)))
            }
        }
        return out + TarWriter.end
    }

    func crcHex(_ b: [UInt8]) -> UInt32 { b.withUnsafeBytes { CRC32C.checksum($0) } }

    /// Stores member `label` (its archives uncompressed, its manifest of the final files, backup.json).
    func storeMember(_ store: FileStore, label: String, parent: String?, base: [Entry], ts: [Entry], references: [String: String]?) throws {
        var archives: [BackupArchive] = []
        for (name, oid, entries) in [("16400.tar", UInt32(16400) as UInt32?, ts), ("base.tar", nil, base)] {
            let bytes = tar(entries)
            try store.put(key: BackupMetadata.prefix(label: label) + name, bytes: bytes)
            archives.append(BackupArchive(object: name, serverName: name, codec: "none", compressedBy: "client", tablespaceOID: oid,
                                          tablespaceLocation: oid == nil ? nil : Self.tsLocation, storedSize: Int64(bytes.count),
                                          storedCRC32C: ArchivedFileMeta.hex(crcHex(bytes)), tarSize: Int64(bytes.count)))
        }
        // The manifest of the data directory this member restores (the final versions: version = label).
        var files: [ManifestWriter.Entry] = []
        for e in Self.baseEntries(version: label) { if case .file(let p, _, let b) = e { files.append(.init(path: p, size: Int64(b.count), lastModified: "2026-11-30 10:00:00 GMT", checksum: ServerManifest.crc32cHex(crcHex(b)))) } }
        for e in Self.tablespaceEntries(version: label) { if case .file(let p, _, let b) = e { files.append(.init(path: "pg_tblspc/16400/" + p, size: Int64(b.count), lastModified: "2026-11-30 10:00:00 GMT", checksum: ServerManifest.crc32cHex(crcHex(b)))) } }
        let manifest = ManifestWriter.render(files: files, timeline: 1, start: LSN(0x100_0028), end: LSN(0x100_0100))
        try store.put(key: BackupMetadata.prefix(label: label) + "backup_manifest", bytes: manifest)
        let size = archives.reduce(Int64(0)) { $0 + $1.storedSize }
        let record = BackupRecord(label: label, startLSN: LSN(0x100_0028), stopLSN: LSN(0x100_0100), startTime: PGTimestamp(unixSeconds: 1_700_000_000),
                                  stopTime: PGTimestamp(unixSeconds: 1_700_000_010), timeline: 1, size: size, storedSize: size, status: .complete,
                                  pgVersion: 150000, systemIdentifier: "7000000000000000001",
                                  type: parent == nil ? .full : .incremental, parent: parent)
        let contents = BackupContents(archives: archives, manifestObject: "backup_manifest", manifestChecksumAlgorithm: "CRC32C",
                                      manifestSize: Int64(manifest.count), serverVersionNum: 150000, walSegmentSize: 16 << 20,
                                      firstWALSegment: "000000010000000000000001", lastWALSegment: "000000010000000000000001",
                                      streamSeconds: 0, walWaitSeconds: 0, compression: "none",
                                      incrementalMethod: parent == nil ? nil : "file", references: references)
        try store.put(key: BackupMetadata.key(label: label), bytes: try BackupMetadata.encode(record, contents))
    }

    /// F (full: every file, its own versions) and I (incremental on F: the files it changed, the
    /// directories and the link; the rest referenced to F).
    func makeChain() throws -> WatchedStore {
        let files = FileStore(root: dir + "/repo")
        try storeMember(files, label: "F", parent: nil, base: Self.baseEntries(version: "F"), ts: Self.tablespaceEntries(version: "F"), references: nil)
        func onlyI(_ entries: [Entry], prefix: String) -> [Entry] {
            entries.filter { if case .file(let p, _, _) = $0 { return Self.storedByI.contains(prefix + p) }; return true }
        }
        var refs: [String: String] = [:]
        for e in Self.baseEntries(version: "I") { if case .file(let p, _, _) = e, !Self.storedByI.contains(p) { refs[p] = "F" } }
        for e in Self.tablespaceEntries(version: "I") { if case .file(let p, _, _) = e, !Self.storedByI.contains("pg_tblspc/16400/" + p) { refs["pg_tblspc/16400/" + p] = "F" } }
        // I's manifest names I's versions of what it stores, F's of the rest: make F's versions equal I's for referenced files.
        try storeMember(files, label: "I", parent: "F", base: onlyI(Self.baseEntries(version: "I"), prefix: ""),
                        ts: onlyI(Self.tablespaceEntries(version: "I"), prefix: "pg_tblspc/16400/"), references: refs)
        return WatchedStore(base: files)
    }

    func restore(_ store: WatchedStore, into target: String, parallel: Int) throws -> RestoreReport {
        var o = RestoreOptions()
        o.tablespaceMapping = [Self.tsLocation: target + "-ts"]
        o.parallel = parallel
        return try restoreBackup(label: "I", repository: Repository(store: store, url: "file://" + dir + "/repo"), pgdata: target, options: o)
    }

    /// Every entry under `root`: relative path -> kind, mode, owner, and the bytes or link target.
    func tree(_ root: String) -> [String: String] {
        var out: [String: String] = [:]
        func visit(_ d: String, _ rel: String) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] {
                let full = d + "/" + name, r = rel.isEmpty ? name : rel + "/" + name
                var st = stat()
                guard lstat(full, &st) == 0 else { continue }
                let meta = "\(String(st.st_mode & 0o7777, radix: 8)) \(st.st_uid):\(st.st_gid)"
                switch st.st_mode & S_IFMT {
                case S_IFDIR: out[r] = "dir " + meta; visit(full, r)
                case S_IFLNK: out[r] = "link " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?")
                default:
                    let b = FileManager.default.contents(atPath: full).map { [UInt8]($0) } ?? []
                    out[r] = "file \(meta) \(b.count) \(String(crcHex(b), radix: 16))"
                }
            }
        }
        visit(root, "")
        return out
    }

    /// The data directory and the tablespace the chain must give: I's manifest, the archives' modes.
    func expectedTree(target: String) -> (data: [String: String], ts: [String: String]) {
        var st = stat()
        _ = stat(dir, &st)   // run as root, everything gets the owner of the target's parent
        let owner = geteuid() == 0 ? "\(st.st_uid):\(st.st_gid)" : "\(geteuid()):\(getegid())"
        func expect(_ entries: [Entry]) -> [String: String] {
            var out: [String: String] = [:]
            for e in entries {
                switch e {
                case .dir(let p, let m): out[p] = "dir \(String(m, radix: 8)) \(owner)"
                case .link(let p, _): out[p] = "link " + target + "-ts"
                case .file(let p, let m, let b):
                    // The umask narrows files' modes (as for any restore); directories get theirs exactly.
                    let u = umask(0); umask(u)
                    out[p] = "file \(String(m & ~UInt32(u), radix: 8)) \(owner) \(b.count) \(String(crcHex(b), radix: 16))"
                }
            }
            return out
        }
        var data = expect(Self.baseEntries(version: "I"))
        data["backup_manifest"] = tree(target)["backup_manifest"]   // written by the restore, checked by its own tests
        return (data, expect(Self.tablespaceEntries(version: "I")))
    }

    // MARK: tests

    /// The chain's archives are read at the same time: each restore read waits (up to 2 s) at its
    /// first chunk for a second one to be under way. One after the other, none ever sees another.
    func testChainArchivesAreRestoredAtOnce() throws {
        let store = try makeChain()
        store.rendezvous = 2
        let report = try restore(store, into: dir + "/r", parallel: 2)
        XCTAssertEqual(report.chain, ["F", "I"])
        XCTAssertGreaterThanOrEqual(store.maxActive, 2, "the archives were read one after the other")
        XCTAssertEqual(store.activeReads, 0)
        let want = expectedTree(target: dir + "/r")
        XCTAssertEqual(tree(dir + "/r"), want.data)
        XCTAssertEqual(tree(dir + "/r-ts"), want.ts)
    }

    /// The same tree (contents, modes, owners, the tablespace link) whichever archive arrives first:
    /// the older member first (its files make their parent directories, 0700, before the newest
    /// member's directory entries give them their modes), the newest first, and one at a time.
    /// Under umask 077 (postgres' usual), so a directory's mode cannot depend on whether mkdir
    /// (narrowed by the umask) or chmod gave it.
    func testChainWithTablespaceRestoresTheSameTreeInAnyOrder() throws {
        let store = try makeChain()
        let saved = umask(0o077)
        defer { umask(saved) }
        var trees: [String: [String: String]] = [:]
        for (name, delayed, parallel) in [("older-first", "I/", 4), ("newest-first", "F/", 4), ("sequential", "", 1)] {
            store.delayFirstChunk = delayed.isEmpty ? [:] : [RepositoryLayout.backupPrefix + delayed: 0.4]
            let target = dir + "/r-" + name
            let report = try restore(store, into: target, parallel: parallel)
            XCTAssertEqual(report.files, 8, name)
            XCTAssertEqual(report.verifiedFiles, 8, name)
            let want = expectedTree(target: target)
            let got = tree(target)
            XCTAssertEqual(got, want.data, name)
            XCTAssertEqual(tree(target + "-ts"), want.ts, name)
            var st = stat()
            XCTAssertEqual(stat(target, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o750, "\(name): the data directory of a group-access cluster")
            trees[name] = got.filter { $0.key != "backup_manifest" }.mapValues { $0.replacingOccurrences(of: target, with: "TARGET") }
        }
        XCTAssertEqual(trees["older-first"], trees["sequential"])
        XCTAssertEqual(trees["newest-first"], trees["sequential"])
    }

    /// An archive that fails mid-stream AFTER the chain was proven whole (its first read, by
    /// verifyChain, is fine): restoreBackup throws that error, the other archive being read stops at
    /// its next chunk instead of reading to its end, and no read is still running (and nothing
    /// changes in the target) once it has returned.
    func testFailingArchiveStopsEveryWorkerBeforeRestoreReturns() throws {
        let store = try makeChain()
        let failing = BackupMetadata.prefix(label: "F") + "16400.tar"
        let slow = BackupMetadata.prefix(label: "F") + "base.tar"
        store.failSecondRead = [failing: 0.2]          // fails 0.2 s into the restore's read
        store.chunkDelay = [slow: 0.1]                  // 7 chunks of 1 MiB: ~0.7 s to read whole
        // Every other read on a thread restoreBackup started waits 0.6 s for its first chunk (a
        // network read does not see the cancellation meanwhile): a restore that returned without
        // joining its threads would leave one running, whichever archive the calling thread took.
        store.callerThread = Thread.current
        store.otherThreadFirstChunkDelay = 0.6
        XCTAssertThrowsError(try restore(store, into: dir + "/r", parallel: 4)) { error in
            guard let e = error as? WalctlError else { return XCTFail("not a WalctlError: \(error)") }
            XCTAssertTrue("\(e)".contains("injected failure"), "the first error is the one reported: \(e)")
        }
        XCTAssertEqual(store.activeReads, 0, "a read was still running after restoreBackup returned")
        let chunks = store.chunksDelivered(slow, read: 2)
        XCTAssertLessThan(chunks, 6, "the other archive was read to its end instead of stopping")
        let before = tree(dir + "/r")
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertEqual(tree(dir + "/r"), before, "the target changed after restoreBackup returned")
        XCTAssertEqual(store.activeReads, 0)
    }

    /// A writer never writes beneath a tablespace link the restore will make, even before that link
    /// exists (another thread's writer makes it), and makes no link the restore did not plan.
    func testWriterRefusesPathsUnderPlannedLinksBeforeTheyExist() throws {
        let root = dir + "/w"
        try FileManager.default.createDirectory(atPath: root + "/pg_tblspc", withIntermediateDirectories: true)
        let w = RestoreWriter(root: root, manifestPrefix: "", manifest: nil, owner: nil, tablespaceTargets: [:], isBase: true)
        w.filesOnly = true
        w.plannedLinks = [root + "/pg_tblspc/16400"]
        XCTAssertThrowsError(try w.begin(TarEntry(path: "pg_tblspc/16400/PG_15/x", kind: .file, mode: 0o600, size: 1, linkTarget: "", mtime: 0)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/pg_tblspc/16400"))
        let newest = RestoreWriter(root: root, manifestPrefix: "", manifest: nil, owner: nil, tablespaceTargets: [:], isBase: true)
        newest.plannedLinks = [root + "/pg_tblspc/16400"]
        XCTAssertThrowsError(try newest.begin(TarEntry(path: "pg_tblspc/99", kind: .symlink, mode: 0o777, size: 0, linkTarget: dir, mtime: 0)))
        try newest.begin(TarEntry(path: "pg_tblspc/16400", kind: .symlink, mode: 0o777, size: 0, linkTarget: dir + "/ts", mtime: 0))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/pg_tblspc/16400"), dir + "/ts")
    }
}

/// A file repository whose reads the test can watch, delay and fail. Counts reads per key (the
/// first read of an archive is verifyChain's, the second the restore's).
final class WatchedStore: ObjectStore, @unchecked Sendable {
    let base: FileStore
    private let lock = NSCondition()
    private var reads: [String: Int] = [:]
    private var delivered: [String: Int] = [:]
    private(set) var maxActive = 0
    private var active = 0
    /// Restore reads of archives wait at their first chunk until this many are under way (at most 2 s).
    var rendezvous = 0
    /// Key prefix -> seconds the restore's read of a matching archive waits before its first chunk.
    var delayFirstChunk: [String: Double] = [:]
    /// Key -> seconds after which the restore's read (the second read) of it fails.
    var failSecondRead: [String: Double] = [:]
    /// Key -> seconds waited before each chunk of the restore's read.
    var chunkDelay: [String: Double] = [:]
    /// Seconds the restore's reads of archives (but those in `failSecondRead`) wait before their
    /// first chunk when they run on another thread than `callerThread`.
    var otherThreadFirstChunkDelay = 0.0
    var callerThread: Thread?

    init(base: FileStore) { self.base = base }

    var location: String { base.location }
    var activeReads: Int { lock.lock(); defer { lock.unlock() }; return active }
    func chunksDelivered(_ key: String, read n: Int) -> Int { lock.lock(); defer { lock.unlock() }; return delivered["\(n) \(key)"] ?? 0 }

    func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter { try base.makeWriter(key: key, options: options) }
    func head(key: String) throws(StoreError) -> ObjectInfo? { try base.head(key: key) }
    func list(prefix: String) throws(StoreError) -> [ObjectInfo] { try base.list(prefix: prefix) }
    func delete(key: String) throws(StoreError) { try base.delete(key: key) }

    func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let isArchive = key.hasSuffix(".tar")
        lock.lock()
        reads[key, default: 0] += 1
        let n = reads[key]!
        let restoreRead = isArchive && n >= 2
        if restoreRead { active += 1; maxActive = max(maxActive, active); lock.broadcast() }
        lock.unlock()
        defer { if restoreRead { lock.lock(); active -= 1; lock.broadcast(); lock.unlock() } }
        guard restoreRead else { return try base.read(key: key, into: sink) }
        let started = Date()
        var first = true
        try base.read(key: key) { chunk in
            if first {
                first = false
                if rendezvous > 1 {
                    lock.lock()
                    let end = Date().addingTimeInterval(2)
                    while maxActive < rendezvous && lock.wait(until: end) {}
                    lock.unlock()
                }
                if let d = delayFirstChunk.first(where: { key.hasPrefix($0.key) })?.value { Thread.sleep(forTimeInterval: d) }
                if otherThreadFirstChunkDelay > 0, failSecondRead[key] == nil, let caller = callerThread, Thread.current !== caller {
                    Thread.sleep(forTimeInterval: otherThreadFirstChunkDelay)
                }
            }
            if let fail = failSecondRead[key] {
                Thread.sleep(forTimeInterval: max(0, fail - Date().timeIntervalSince(started)))
                throw StoreError.io(operation: "read (injected failure)", path: key, errno: EIO)
            }
            if let d = chunkDelay[key] { Thread.sleep(forTimeInterval: d) }
            try sink(chunk)
            lock.lock(); delivered["\(n) \(key)", default: 0] += 1; lock.unlock()
        }
    }
}
