import Foundation
import Testing
import Storage
import TestSupport
import WALFormat
import Codec
import Catalog
@testable import Commands

/// Issue 8: the spool state machine, ready-file discovery, lock exclusivity, the safety valve
/// (including a push that hangs) and the prefetch spool's refusal to serve stale or partial files.
@Suite struct AsyncTests {
    let root: String
    let repository: Repository
    let info: RepositoryInfo

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-async-\(UUID().uuidString)").path
        repository = Repository(store: FileStore(root: root + "/repo"), url: "file://" + root + "/repo")
        info = RepositoryInfo(systemIdentifier: 7_712_321_645_893_095_454, walSegmentSize: WALSegmentSize.default.bytes,
                              pgVersion: 15, createdAt: PGTimestamp(microseconds: 0))
        try repository.bind(info)
        try FileManager.default.createDirectory(atPath: root + "/pg_wal/archive_status", withIntermediateDirectories: true)
    }

    func segment(_ n: XLogSegNo) -> [UInt8] {
        var w = SyntheticWAL(firstSegment: n)
        _ = w.appendCommit(time: PGTimestamp(microseconds: 848_980_022_115_455 + Int64(n)))
        return w.segment(0)
    }

    func name(_ n: XLogSegNo) -> String { SegmentID(timeline: 1, segno: n).fileName(size: .default) }

    /// Writes segment `n` into pg_wal and marks it ready, the way PostgreSQL does.
    @discardableResult
    func makeReady(_ n: XLogSegNo, age: TimeInterval = 0) throws -> String {
        let nm = name(n)
        try Data(segment(n)).write(to: URL(fileURLWithPath: root + "/pg_wal/" + nm))
        let ready = root + "/pg_wal/archive_status/" + nm + ".ready"
        FileManager.default.createFile(atPath: ready, contents: nil)
        if age > 0 { try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: ready) }
        return nm
    }

    func config(_ extra: [String: String] = [:]) throws -> Configuration {
        var flags = ["repository": "file://" + root + "/repo", "catalog": root + "/catalog.db"]
        for (k, v) in extra { flags[k] = v }
        return try Configuration.load(flags: flags, environment: [:], configPath: "/dev/null")
    }

    // MARK: ready files

    @Test func readyFilesHistoryFirstThenByNameAndOnlyWALNames() throws {
        for n: XLogSegNo in [7, 3, 5] { try makeReady(n) }
        let st = root + "/pg_wal/archive_status/"
        FileManager.default.createFile(atPath: st + "00000002.history.ready", contents: nil)
        FileManager.default.createFile(atPath: st + "junk.ready", contents: nil)
        FileManager.default.createFile(atPath: st + name(1) + ".done", contents: nil)
        let ready = ReadyScanner.scan(walDir: root + "/pg_wal")
        #expect(ready.map(\.name) == ["00000002.history", name(3), name(5), name(7)])
        #expect(ready[1].size == Int64(WALSegmentSize.default.bytes))
        #expect(ReadyScanner.backlog(ready).bytes == 3 * Int64(WALSegmentSize.default.bytes))
    }

    // MARK: spool state machine

    @Test func spoolResultLifecycle() throws {
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let nm = try makeReady(4)
        #expect(spool.result(nm) == .none)
        try spool.writeError(nm, "boom")
        #expect(spool.result(nm) == .error("boom"))
        #expect(spool.resultAndSkippedNames().results.contains(nm))
        let meta = ArchivedFileMeta(name: nm, size: 1, storedSize: 1, codec: "zstd", crc32c: 1, archivedAt: PGTimestamp(microseconds: 0), summary: nil)
        let rec = PushRecord(repository: "r", sourceSize: 1, sourceMTimeNs: 2, meta: meta, alreadyArchived: false)
        try spool.writeOK(nm, rec)   // a retry that succeeded replaces the error
        #expect(spool.result(nm) == .ok(rec))
        #expect(spool.resultCounts().ok == 1 && spool.resultCounts().error == 0)
        spool.consume(nm)
        #expect(spool.result(nm) == .none)
        // A result whose .ready is gone (PostgreSQL moved on) is an orphan.
        try spool.writeOK(name(9), rec)
        try spool.writeOK(nm, rec)
        spool.dropOrphans(walDir: root + "/pg_wal")
        #expect(spool.result(name(9)) == .none)
        #expect(spool.result(nm) == .ok(rec))
    }

    // MARK: lock

    @Test func lockIsExclusiveAndDiesWithItsHolder() throws {
        let path = root + "/daemon.lock"
        #expect(!SpoolLock.isHeld(path))
        let first = try #require(try SpoolLock.tryAcquire(path))
        #expect(try SpoolLock.tryAcquire(path) == nil)
        #expect(SpoolLock.isHeld(path))
        first.release()
        #expect(!SpoolLock.isHeld(path))
        let again = try #require(try SpoolLock.tryAcquire(path))
        again.release()
    }

    @Test func secondPusherDoesNotRun() throws {
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let held = try #require(try SpoolLock.tryAcquire(spool.lockPath))
        defer { held.release() }
        let daemon = AsyncPushDaemon(config: try config(), walDir: root + "/pg_wal", spoolRoot: spool.root, logger: WalctlLog.silent)
        #expect(try daemon.run() == false)
    }

    // MARK: the pipeline

    func engine(store: ObjectStore? = nil, stageMax: Int64 = 1 << 30) throws -> (PushEngine, ArchiveSpool) {
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let repo = store.map { Repository(store: $0, url: "fake://") } ?? repository
        let pusher = ArchivePush(repository: repo, codec: .zstd, level: nil)
        let e = PushEngine(pusher: pusher, info: info, spool: spool, walDir: root + "/pg_wal", repositorySetting: "r",
                           compressWorkers: 2, uploadWorkers: 3, stageMax: stageMax, logger: WalctlLog.silent)
        e.start()
        return (e, spool)
    }

    @Test func engineStoresEveryReadyFileByteIdentical() throws {
        let names = try (10..<22).map { try makeReady(XLogSegNo($0)) }
        let (e, spool) = try engine(stageMax: 1)   // the tightest bound still makes progress
        defer { e.stop() }
        #expect(e.submit(ReadyScanner.scan(walDir: root + "/pg_wal")) == names.count)
        #expect(e.submit(ReadyScanner.scan(walDir: root + "/pg_wal")) == 0)   // in flight: not twice
        #expect(e.drain(timeout: 60))
        for (i, nm) in names.enumerated() {
            guard case .ok(let rec) = spool.result(nm) else { Issue.record("\(nm): \(spool.result(nm))"); continue }
            #expect(try repository.meta(for: .segment(nm)) == rec.meta)
            _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: nm, targetPath: root + "/back")
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/back"))) == segment(XLogSegNo(10 + i)))
        }
    }

    @Test func oneFailureIsReportedForThatFileOnly() throws {
        let good = try makeReady(30)
        let bad = name(31)
        // Segment 32's bytes under segment 31's name: the page address does not match.
        try Data(segment(32)).write(to: URL(fileURLWithPath: root + "/pg_wal/" + bad))
        FileManager.default.createFile(atPath: root + "/pg_wal/archive_status/" + bad + ".ready", contents: nil)
        let (e, spool) = try engine()
        defer { e.stop() }
        e.submit(ReadyScanner.scan(walDir: root + "/pg_wal"))
        #expect(e.drain(timeout: 60))
        guard case .ok = spool.result(good) else { Issue.record("good: \(spool.result(good))"); return }
        guard case .error(let m) = spool.result(bad) else { Issue.record("bad: \(spool.result(bad))"); return }
        #expect(m.contains("invalid-wal"))
        #expect(try repository.meta(for: .segment(bad)) == nil)
    }

    // MARK: safety valve

    @Test func valveDecisions() {
        let off = ValvePolicy()
        #expect(!off.enabled)
        #expect(off.decide(readyBytes: .max, age: 1e9) == nil)
        let p = ValvePolicy(queueMax: 100, maxAge: 60)
        #expect(p.decide(readyBytes: 100, age: 60) == nil)
        #expect(p.decide(readyBytes: 101, age: 0)?.contains("archive-push-queue-max") == true)
        #expect(p.decide(readyBytes: 0, age: 61)?.contains("archive-push-max-age") == true)
    }

    @Test func valveCheckUsesReadyBytesAndAge() throws {
        let old = try makeReady(40, age: 120)
        let young = try makeReady(41)
        let byAge = ValvePolicy(maxAge: 60)
        #expect(byAge.check(walDir: root + "/pg_wal", name: old) != nil)
        #expect(byAge.check(walDir: root + "/pg_wal", name: young) == nil)
        let byBytes = ValvePolicy(queueMax: Int64(WALSegmentSize.default.bytes))
        #expect(byBytes.check(walDir: root + "/pg_wal", name: young) != nil)   // two segments waiting
    }

    @Test func valveFiresWhileAPushHangs() throws {
        let nm = try makeReady(50, age: 10)
        let hanging = HangingStore()
        defer { hanging.release() }
        let cfg = try config(["archive-push-max-age": "11", "archive-push-timeout": "2"])
        let spool = ArchiveSpool(root: root + "/spool")
        let repo = Repository(store: hanging, url: "fake://")
        let push = ArchivePush(repository: repo, codec: .zstd, level: nil)
        let warnings = LogCapture()
        let start = Date()
        let outcome = try AsyncArchive(config: cfg, logger: warnings.logger).guardedDirect(
            name: .segment(nm), size: Int64(WALSegmentSize.default.bytes), walDir: root + "/pg_wal", spool: spool, valve: try ValvePolicy(config: cfg),
            direct: {
                let bytes = self.segment(50)
                return try bytes.withUnsafeBytes { try push.push(name: .segment(nm), content: $0, info: self.info, displayPath: nm) }
            })
        let took = Date().timeIntervalSince(start)
        #expect(hanging.entered)      // the push really was hanging in the store
        #expect(took < 6)
        guard case .stored(let m) = outcome else { Issue.record("\(outcome)"); return }
        #expect(m.codec == "skipped")
        #expect(warnings.entries.contains { $0.level == .warning && $0.message.contains("SAFETY VALVE") && $0.message.contains(nm) })
        #expect(spool.resultAndSkippedNames().skipped.contains(nm))
        // The gap is marked in the configured repository, and in the catalog.
        #expect(try repository.store.head(key: SafetyValve.markerKey(.segment(nm))) != nil)
        #expect(try catalog().skippedSegments().map(\.name) == [nm])
    }

    func catalog() throws -> Catalog {
        try Catalog(path: root + "/catalog.db", repositoryURL: repository.url, segmentSize: .default)
    }

    @Test func aSkipIsInTheCatalogUntilTheSegmentIsArchivedAfterAll() throws {
        let nm = try makeReady(70)
        let warnings = LogCapture()
        let outcome = try AsyncArchive(config: try config(["archive-push-queue-max": "1"]), logger: warnings.logger)
            .pushIfEnabled(path: root + "/pg_wal/" + nm, direct: { throw WalctlError.store(.transport(message: "the repository is down", key: nm)) })
        guard case .stored(let m)? = outcome else { Issue.record("\(String(describing: outcome))"); return }
        #expect(m.codec == "skipped")
        #expect(!warnings.all.contains { $0.contains("could not record") })
        let rows = try catalog().skippedSegments()
        #expect(rows.map(\.name) == [nm])
        #expect(rows.first?.reason.contains("archive-push-queue-max") == true)
        #expect(rows.first?.size == Int64(WALSegmentSize.default.bytes))
        // The catalog is local: the row is written even when the repository cannot take the marker
        // (here its path runs through a regular file, which fails for root too).
        FileManager.default.createFile(atPath: root + "/not-a-directory", contents: Data([1]))
        let down = try config(["archive-push-queue-max": "1", "repository": "file://" + root + "/not-a-directory/repo"])
        let other = try makeReady(71)
        let downWarnings = LogCapture()
        _ = try AsyncArchive(config: down, logger: downWarnings.logger)
            .pushIfEnabled(path: root + "/pg_wal/" + other, direct: { throw WalctlError.refused("no") })
        #expect(downWarnings.all.contains { $0.contains("did not take the skip marker") })
        let elsewhere = try Catalog(path: root + "/catalog.db", repositoryURL: "file://" + root + "/not-a-directory/repo", segmentSize: .default)
        #expect(try elsewhere.skippedSegments().map(\.name) == [other])
        // PostgreSQL pushes it again later and it is stored: the segment row wins, no gap.
        _ = try Archiver(config: try config()).push(path: root + "/pg_wal/" + nm)
        #expect(try catalog().skippedSegments().isEmpty)
        #expect(try catalog().segment(named: nm) != nil)
    }

    @Test func pendingSkipMarkersReachTheRepositoryOrVanishWhenArchivedAfterAll() throws {
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let skipped = name(60), archived = try makeReady(61)
        for n in [skipped, archived] {
            try spool.writeSkip(SkipRecord(name: n, reason: "test", skippedAt: PGTimestamp(microseconds: 0), size: 1, markerStored: false))
        }
        _ = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: root + "/pg_wal/" + archived)
        SafetyValve.flushPending(spool: spool, repository: repository, logger: WalctlLog.silent)
        #expect(spool.skipRecords().map(\.name) == [skipped])
        #expect(spool.skipRecords().first?.markerStored == true)
        #expect(try repository.store.head(key: SafetyValve.markerKey(.segment(skipped))) != nil)
    }

    // MARK: the daemons' log (issue 15)

    /// The background pusher's lines go through its logger (`WalctlLog.daemon`) into the spool's
    /// daemon.log, one line each with the time and pid, as the daemon wrote them before it had a
    /// logger; its own notices and up whatever `log-level` says, debug detail only with debug.
    @Test func thePushersLinesLandInDaemonLog() throws {
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let logger = try WalctlLog.daemon(level: "error", logPath: spool.logPath)
        let daemon = AsyncPushDaemon(config: try config(["repository": "file://" + root + "/not-initialised"]), walDir: root + "/pg_wal",
                                     spoolRoot: spool.root, logger: logger)
        #expect(throws: WalctlError.self) { try daemon.run() }
        logger.notice("a notice")
        logger.warning("a warning")
        logger.debug("a debug line")
        let lines = try String(contentsOfFile: spool.logPath, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(lines)")
        let prefix = #/^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) walctl\[(\d+)\]: (.*)$/#
        let parsed = lines.compactMap { $0.wholeMatch(of: prefix) }
        #expect(parsed.count == lines.count, "\(lines)")
        #expect(parsed.allSatisfy { $0.output.2 == Substring(String(getpid())) })
        #expect(parsed.first?.output.3.hasPrefix("start failed (1 in a row): [repo-not-initialised] ") == true, "\(lines)")
        #expect(parsed.dropFirst().map { String($0.output.3) } == ["a notice", "a warning"])
        // Debug detail with log-level = debug, marked as such.
        try WalctlLog.daemon(level: "debug", logPath: spool.logPath).debug("GET x")
        #expect(try String(contentsOfFile: spool.logPath, encoding: .utf8).hasSuffix(" walctl[\(getpid())]: debug: GET x\n"))
    }

    /// The prefetcher's failed fetch is a warning line in its spool's daemon.log.
    @Test func thePrefetchersFailedFetchLandsInDaemonLog() throws {
        let nm = try makeReady(90)
        guard case .stored(let meta) = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: root + "/pg_wal/" + nm) else {
            Issue.record("not stored"); return
        }
        try repository.store.delete(key: try #require(meta.objectKey))
        let spool = PrefetchSpool(dir: root + "/pg_wal/walctl_prefetch")
        try spool.prepare()
        let d = PrefetchDaemon(spool: spool, repository: repository, repositorySetting: "file://" + root + "/repo", depth: 8, spoolMax: 1 << 30,
                               workers: 1, segmentSize: .default, logger: try WalctlLog.daemon(level: "warning", logPath: spool.logPath))
        try spool.setWant(name(89))
        #expect(d.fetch(nm) == .dropped)
        let text = try String(contentsOfFile: spool.logPath, encoding: .utf8)
        #expect(text.contains(" walctl[\(getpid())]: prefetch of \(nm) failed: ") && text.hasSuffix(" (recovery will fetch it directly)\n"), "\(text)")
    }

    /// daemon.log is opened through LocalFS: never through a symbolic link.
    @Test func aSymlinkedDaemonLogIsRefused() throws {
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        FileManager.default.createFile(atPath: root + "/victim", contents: Data("keep\n".utf8))
        #expect(symlink(root + "/victim", spool.logPath) == 0)
        #expect(throws: WalctlError.self) { _ = try WalctlLog.daemon(level: "warning", logPath: spool.logPath) }
        #expect(try String(contentsOfFile: root + "/victim", encoding: .utf8) == "keep\n")
    }

    // MARK: issue 13

    /// The valve lets a file go only after its own push failed for a reason it covers (or timed
    /// out): a push that succeeds is stored however large the backlog; a mismatch is never let go.
    @Test func valveLetsGoOnlyAfterItsOwnPushFailed() throws {
        let nm = try makeReady(80)
        let cfg = try config(["archive-push-queue-max": "1"])
        let spool = ArchiveSpool(root: root + "/spool")
        let async = AsyncArchive(config: cfg)
        let valve = try ValvePolicy(config: cfg)
        #expect(valve.check(walDir: root + "/pg_wal", name: nm) != nil)   // over the limit
        let bytes = segment(80)
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil)
        let ok = try async.guardedDirect(name: .segment(nm), size: 1, walDir: root + "/pg_wal", spool: spool, valve: valve, direct: {
            try bytes.withUnsafeBytes { try push.push(name: .segment(nm), content: $0, info: self.info, displayPath: nm) }
        })
        guard case .stored(let m) = ok else { Issue.record("\(ok)"); return }
        #expect(m.codec == "zstd")
        #expect(try repository.meta(for: .segment(nm)) != nil)
        #expect(throws: WalctlError.self) {
            try async.guardedDirect(name: .segment(nm), size: 1, walDir: root + "/pg_wal", spool: spool, valve: valve,
                                    direct: { throw WalctlError.archiveMismatch(name: nm, archivedCRC: "1", newCRC: "2") })
        }
        let down = try async.guardedDirect(name: .segment(nm), size: 1, walDir: root + "/pg_wal", spool: spool, valve: valve,
                                           direct: { throw WalctlError.store(.transport(message: "down", key: nm)) })
        guard case .stored(let s) = down else { Issue.record("\(down)"); return }
        #expect(s.codec == "skipped")
        #expect(ValvePolicy.mayLetGo(afterMessage: "[repo-io] x") && !ValvePolicy.mayLetGo(afterMessage: "[archive-mismatch] x"))
        #expect(!ValvePolicy.mayLetGo(afterMessage: "[invalid-wal] x") && ValvePolicy.mayLetGo(afterMessage: "no code"))
    }

    /// A file PostgreSQL has not marked ready is an operator's push: direct, no spool, no pusher.
    @Test func aFileWithoutReadyIsPushedDirectlyInAsyncMode() throws {
        let nm = name(81)
        try FileManager.default.createDirectory(atPath: root + "/loose", withIntermediateDirectories: true)
        try Data(segment(81)).write(to: URL(fileURLWithPath: root + "/loose/" + nm))
        var called = false
        var thrown: String?
        let cfg = try config(["archive-async": "true", "archive-push-queue-max": "1"])
        do {
            _ = try AsyncArchive(config: cfg)
                .pushIfEnabled(path: root + "/loose/" + nm, direct: { called = true; throw WalctlError.refused("its own result") })
        } catch { thrown = "\(error)" }
        #expect(called)
        #expect(thrown == "its own result")
        #expect(!FileManager.default.fileExists(atPath: ArchiveSpool.rootPath(config: cfg, walDir: root + "/loose")))
    }

    @Test func spoolsOthersCanChangeAreRefused() throws {
        guard geteuid() == 0 else { return }   // needs chown to another user
        func refusal(_ r: String) -> String? {
            do { try ArchiveSpool(root: r).prepare(); return nil } catch { return "\(error)" }
        }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/theirs/archive", withIntermediateDirectories: true)
        #expect(chown(root + "/theirs", 65534, 65534) == 0)
        #expect(refusal(root + "/theirs")?.contains("is owned by") == true)
        try fm.createDirectory(atPath: root + "/open", withIntermediateDirectories: true)
        #expect(chmod(root + "/open", 0o770) == 0)
        #expect(refusal(root + "/open")?.contains("writable by group or others (mode 770)") == true)
        #expect(!fm.fileExists(atPath: root + "/open/archive"))
        #expect(symlink(root + "/open", root + "/link") == 0)
        #expect(refusal(root + "/link")?.contains("symbolic link") == true)
        try fm.createDirectory(atPath: root + "/parent", withIntermediateDirectories: true)
        #expect(chown(root + "/parent", 65534, 65534) == 0)
        #expect(refusal(root + "/parent/spool")?.contains("on the spool's path") == true)
        try fm.createDirectory(atPath: root + "/sticky", withIntermediateDirectories: true)
        #expect(chmod(root + "/sticky", 0o1777) == 0)
        #expect(refusal(root + "/sticky/spool") == nil)
        var st = stat()
        #expect(lstat(root + "/sticky/spool/archive/skipped", &st) == 0 && st.st_mode & 0o777 == 0o700)
    }

    @Test func nothingInASpoolIsFollowedThroughASymlink() throws {
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let victim = root + "/victim"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: victim))
        #expect(symlink(victim, spool.lockPath) == 0)
        #expect(throws: WalctlError.self) { _ = try SpoolLock.tryAcquire(spool.lockPath) }
        // A result planted as a link is not read; a result written over a link replaces the link.
        let nm = name(82)
        let record = PushRecord(repository: "r", sourceSize: 1, sourceMTimeNs: 1,
                                meta: ArchivedFileMeta(name: nm, size: 1, storedSize: 1, codec: "zstd", crc32c: 1, archivedAt: PGTimestamp(microseconds: 0), summary: nil),
                                alreadyArchived: false)
        try Data(SpoolFS.encode(record)).write(to: URL(fileURLWithPath: root + "/elsewhere.ok"))
        #expect(symlink(root + "/elsewhere.ok", spool.dir + "/" + nm + ".ok") == 0)
        #expect(spool.result(nm) == .none)
        #expect(symlink(victim, spool.dir + "/" + name(83) + ".ok") == 0)
        try spool.writeOK(name(83), record)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious")
        #expect(spool.result(name(83)) == .ok(record))
    }

    @Test func daemonStartsBackOff() throws {
        #expect(DaemonStartFailure.backoff(failures: 1) == 1 && DaemonStartFailure.backoff(failures: 2) == 2)
        #expect(DaemonStartFailure.backoff(failures: 6) == 32 && DaemonStartFailure.backoff(failures: 7) == 60 && DaemonStartFailure.backoff(failures: 99) == 60)
        let spool = ArchiveSpool(root: root + "/spool")
        try spool.prepare()
        let now = Date()
        spool.recordFailedStart(reason: "[repo-io] a", now: now)
        let f = spool.recordFailedStart(reason: "[repo-io] b", now: now)
        #expect(f.failures == 2 && spool.failedStart() == f)
        #expect(abs(f.remaining(now: now) - 2) < 0.01 && f.remaining(now: now.addingTimeInterval(3)) == 0)
        spool.clearFailedStart()
        #expect(spool.failedStart() == nil)
    }

    @Test func spoolDefaultsToTheDataDirectoryElseTheUsersOwnStateDirectory() throws {
        let cfg = try config()
        #expect(ArchiveSpool.rootPath(config: cfg, walDir: "/srv/pg/main/pg_wal") == "/srv/pg/main/walctl_spool")
        #expect(ArchiveSpool.rootPath(config: try config(["spool-path": "/var/spool/w"]), walDir: "/x/pg_wal") == "/var/spool/w")
        #expect(ArchiveSpool.rootPath(config: try config(["pgdata": "/srv/d"]), walDir: "/elsewhere/wal") == "/srv/d/walctl_spool")
        let other = ArchiveSpool.rootPath(config: cfg, walDir: "/elsewhere/wal")
        #expect(!other.hasPrefix("/tmp") && other.contains("/walctl/spool-wal-"))
        #expect(other != ArchiveSpool.rootPath(config: cfg, walDir: "/elsewhere2/wal"))
    }

    // MARK: prefetch

    func prefetcher(depth: Int = 8, spoolMax: Int64 = 1 << 30) -> PrefetchDaemon {
        PrefetchDaemon(spool: PrefetchSpool(dir: root + "/pg_wal/walctl_prefetch"), repository: repository, repositorySetting: "file://" + root + "/repo",
                       depth: depth, spoolMax: spoolMax, workers: 2, segmentSize: .default, logger: WalctlLog.silent)
    }

    @Test func windowStopsAtTheEndOfThePlannedRange() {
        let d = prefetcher(depth: 8)
        d.planEnd = [1: 0x12, 2: 0x40]
        #expect(d.window(after: "000000010000000000000010") == ["000000010000000000000011", "000000010000000000000012"])
        #expect(d.window(after: "000000010000000000000012").isEmpty)
        #expect(d.window(after: "000000010000000000000013").isEmpty)
        #expect(d.window(after: "000000020000000000000010").count == 8)   // far from timeline 2's end
        #expect(d.window(after: "000000030000000000000010").count == 8)   // not in the plan: depth only
    }

    @Test func windowIsSameTimelineAndBoundedByBytes() {
        let d = prefetcher(depth: 8, spoolMax: 3 * Int64(WALSegmentSize.default.bytes))
        let w = d.window(after: "0000000200000000000000FF")
        #expect(w == ["000000020000000100000000", "000000020000000100000001", "000000020000000100000002"])
        #expect(prefetcher(depth: 2).window(after: "00000002.history").isEmpty)
    }

    @Test func prefetchedSegmentIsServedOnlyWhenCurrentAndComplete() throws {
        for n: XLogSegNo in 70...72 { _ = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: try root + "/pg_wal/" + makeReady(n)) }
        let spool = PrefetchSpool(dir: root + "/pg_wal/walctl_prefetch")
        try spool.prepare()
        let d = prefetcher()
        try spool.setWant(name(70))
        #expect(d.fetch(name(71)) == .stored)
        #expect(d.fetch(name(72)) == .stored)
        #expect(d.fetch(name(73)) == .missing)   // not archived
        let get = PrefetchGet(config: try config())
        let target = root + "/pg_wal/RECOVERYXLOG"

        // Current and complete: served by rename, byte-identical.
        let served = try get.serve(name: name(71), targetPath: target, spool: spool, repository: repository)
        guard case .restored = served else { Issue.record("not served: \(String(describing: served))"); return }
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: target))) == segment(71))
        #expect(spool.record(name(71)) == nil)

        // Stale: the record says another repository (or another meta): never served, and removed.
        var rec = try #require(spool.record(name(72)))
        rec.repository = "s3://elsewhere/x"
        try SpoolFS.write(spool.dir + "/" + name(72) + ".rec", SpoolFS.encode(rec))
        #expect(try get.serve(name: name(72), targetPath: target, spool: spool, repository: repository) == nil)
        #expect(!SpoolFS.exists(spool.dir + "/" + name(72)))
        rec.repository = "file://" + root + "/repo"
        rec.meta.crc32c = "00000000"
        #expect(d.fetch(name(72)) == .stored)
        try SpoolFS.write(spool.dir + "/" + name(72) + ".rec", SpoolFS.encode(rec))
        #expect(try get.serve(name: name(72), targetPath: target, spool: spool, repository: repository) == nil)

        // Partial: a data file without its record, or only a temporary file: never served.
        try Data(segment(70).prefix(1000)).write(to: URL(fileURLWithPath: spool.dir + "/" + name(70)))
        try Data(segment(70).prefix(1000)).write(to: URL(fileURLWithPath: spool.dir + "/." + name(70) + ".walctl-tmp.1"))
        #expect(try get.serve(name: name(70), targetPath: target, spool: spool, repository: repository) == nil)
    }

    @Test func prefetchStepCleansOtherTimelinesAndStopsAtFirstMissing() throws {
        for n: XLogSegNo in 80...82 { _ = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: try root + "/pg_wal/" + makeReady(n)) }
        let spool = PrefetchSpool(dir: root + "/pg_wal/walctl_prefetch")
        try spool.prepare()
        let d = prefetcher(depth: 5)
        try spool.setWant(name(80))
        for n: XLogSegNo in 81...84 { _ = d.fetch(name(n)) }
        #expect(spool.entries() == [name(81), name(82)])
        // Recovery moves to timeline 2: everything of timeline 1 leaves the spool.
        let t2 = SegmentID(timeline: 2, segno: 80).fileName(size: .default)
        try spool.setWant(t2)
        d.step(want: t2, now: Date())
        #expect(spool.entries().isEmpty)
        spool.shutDown()
        #expect(SpoolFS.exists(spool.stopPath))
    }
}

/// A store whose writes never return until released: a push that hangs (fault injection only).
final class HangingStore: ObjectStore, @unchecked Sendable {
    let gate = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var _entered = false
    var entered: Bool { lock.lock(); defer { lock.unlock() }; return _entered }
    var location: String { "hang://" }
    func release() { for _ in 0..<16 { gate.signal() } }
    func hang() { lock.lock(); _entered = true; lock.unlock(); gate.wait() }
    func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter { hang(); throw .transport(message: "released", key: key) }
    func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws { hang(); throw StoreError.transport(message: "released", key: key) }
    func head(key: String) throws(StoreError) -> ObjectInfo? { hang(); return nil }
    func list(prefix: String) throws(StoreError) -> [ObjectInfo] { hang(); return [] }
    func delete(key: String) throws(StoreError) { hang() }
}
