import Foundation
import Storage
import WALFormat
import Codec
import Logging

/// Asynchronous archive-push (`archive-async = true`) and the safety valve, as `Archiver.push`
/// uses them.
///
/// The foreground (PostgreSQL's archive_command for file X) never stores anything itself: it makes
/// sure the background pusher runs (starting it when its lock is free), then waits for the pusher's
/// result for X in the spool. The pusher pushes every file PostgreSQL has marked ready, in parallel,
/// so by the time PostgreSQL asks for X+1 its result is usually there already and the call costs a
/// process start and a few `stat`s. X is acknowledged (exit 0) only when the pusher wrote `X.ok`,
/// which it does only after X's meta is durable in the repository.
public struct AsyncArchive {
    public var config: Configuration
    /// The CLI's logger: the safety valve's and the damaged-WAL warnings go to PostgreSQL's log.
    public var logger: Logger

    public init(config: Configuration, logger: Logger = WalctlLog.silent) { self.config = config; self.logger = logger }

    /// Seconds between the foreground's looks at the spool.
    static let pollInterval: useconds_t = 2_000

    /// The outcome when the safety valve let the file go: a meta-shaped placeholder whose codec is
    /// `skipped` (nothing was stored; the warning is already in PostgreSQL's log).
    static func skippedOutcome(_ name: String, size: Int64) -> PushOutcome {
        .stored(ArchivedFileMeta(name: name, size: size, storedSize: 0, codec: "skipped", crc32c: 0,
                                 archivedAt: PGTimestamp(date: Date()), summary: nil))
    }

    /// Handles archive-push when `archive-async` or the safety valve is on; nil when neither is
    /// (the caller then pushes synchronously as before). `direct` is that synchronous push.
    ///
    /// A file without a `.ready` status file is not PostgreSQL's archiver asking (it marks a file
    /// ready before it runs archive_command): an operator's manual push, e.g. the re-push of a
    /// file the valve let go. It is pushed directly, synchronously, outside the valve, and the call
    /// exits on its own result; no spool is touched and no background pusher is started.
    public func pushIfEnabled(path: String, direct: @escaping () throws -> PushOutcome) throws -> PushOutcome? {
        let async = try config.bool(.archiveAsync)
        let valve = try ValvePolicy(config: config)
        guard async || valve.enabled else { return nil }
        let abs = SpoolFS.absolute(path)
        let base = (abs as NSString).lastPathComponent
        guard let name = WALFileName(base) else { throw WalctlError.invalidName(base) }
        let walDir = (abs as NSString).deletingLastPathComponent
        guard SpoolFS.fileInfo(walDir + "/archive_status/" + base + ".ready") != nil else {
            return try manualPush(name: name, walDir: walDir, direct: direct)
        }
        let spool = ArchiveSpool(root: ArchiveSpool.rootPath(config: config, walDir: walDir))
        try spool.prepare()
        let size = SpoolFS.fileInfo(abs)?.size ?? 0
        if async {
            return try pushAsync(name: name, path: abs, walDir: walDir, spool: spool, valve: valve)
        }
        return try guardedDirect(name: name, size: size, walDir: walDir, spool: spool, valve: valve, direct: direct)
    }

    /// The manual push: direct; once stored, a valve record of this file (if any) is settled.
    func manualPush(name: WALFileName, walDir: String, direct: () throws -> PushOutcome) throws -> PushOutcome {
        let outcome = try direct()
        let spool = ArchiveSpool(root: ArchiveSpool.rootPath(config: config, walDir: walDir))
        if SpoolFS.fileInfo(spool.skippedDir + "/" + name.description + ".json") != nil, (try? spool.prepare()) != nil,
           let repo = try? RepositoryFactory.open(config, logger: logger) {
            SafetyValve.flushPending(spool: spool, repository: repo, logger: logger)
        }
        return outcome
    }

    /// The seconds a push may take before the valve, when over its limits, lets the file go.
    func pushTimeout() throws -> Int { try config.int(.archivePushTimeout) ?? 60 }

    /// Synchronous push under the valve (docs/async.md, "Safety valve"): the push runs on a thread,
    /// this thread waits for it. The file is let go (exit 0, recorded) only while the valve's limits
    /// are exceeded, and only when the push failed for a reason the valve covers
    /// (`ValvePolicy.mayLetGo`) or has not completed within `archive-push-timeout` (a push that
    /// hangs on a dead mount or a stalled connection is let go then, not when it returns).
    func guardedDirect(name: WALFileName, size: Int64, walDir: String, spool: ArchiveSpool, valve: ValvePolicy,
                       direct: @escaping () throws -> PushOutcome) throws -> PushOutcome {
        final class Box: @unchecked Sendable { var result: Result<PushOutcome, Error>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let timeout = try pushTimeout()
        let started = Date()
        let deadline = started.addingTimeInterval(TimeInterval(timeout))
        Thread.detachNewThread {
            box.result = Result { try direct() }
            done.signal()
        }
        while done.wait(timeout: .now() + 0.25) == .timedOut {
            if Date() > deadline, let reason = valve.check(walDir: walDir, name: name.description) {
                SafetyValve.skip(name: name.description, size: size, reason: reason + "; its push did not complete within archive-push-timeout \(timeout) s",
                                 spool: spool, config: config, logger: logger)
                return Self.skippedOutcome(name.description, size: size)
            }
        }
        switch box.result! {
        case .success(let outcome):
            if !spool.skipRecords().isEmpty, let repo = try? RepositoryFactory.open(config, logger: logger) {
                SafetyValve.flushPending(spool: spool, repository: repo, logger: logger)
            }
            return outcome
        case .failure(let error):
            if ValvePolicy.mayLetGo(after: error), let reason = valve.check(walDir: walDir, name: name.description) {
                SafetyValve.skip(name: name.description, size: size, reason: reason + "; its push failed: \(Self.describe(error))",
                                 spool: spool, config: config, logger: logger)
                return Self.skippedOutcome(name.description, size: size)
            }
            throw error
        }
    }

    static func describe(_ error: Error) -> String {
        if let w = error as? WalctlError { return "[\(w.code)] \(w)" }
        return "\(error)"
    }

    /// The foreground of an asynchronous push. With the valve on, the file is let go only when its
    /// push failed (an `.error` result, or a pusher that cannot start) for a reason the valve
    /// covers, or has no result after `archive-push-timeout` seconds, and only while the valve's
    /// limits are exceeded at that moment.
    func pushAsync(name: WALFileName, path: String, walDir: String, spool: ArchiveSpool, valve: ValvePolicy) throws -> PushOutcome {
        let timeout = try pushTimeout()
        let started = Date()
        let deadline = started.addingTimeInterval(TimeInterval(timeout))
        let repositorySetting = config[.repository] ?? ""
        var lastDaemonCheck = Date.distantPast
        var launch = Launch()
        func letGo(_ why: String) -> PushOutcome? {
            guard valve.enabled, let reason = valve.check(walDir: walDir, name: name.description) else { return nil }
            let size = SpoolFS.fileInfo(path)?.size ?? 0
            SafetyValve.skip(name: name.description, size: size, reason: reason + "; " + why, spool: spool, config: config, logger: logger)
            return Self.skippedOutcome(name.description, size: size)
        }
        while true {
            switch spool.result(name.description) {
            case .ok(let r):
                if let st = SpoolFS.fileInfo(path), r.repository == repositorySetting, r.sourceSize == st.size, r.sourceMTimeNs == st.mtimeNs {
                    spool.consume(name.description)
                    // The pusher logged it in daemon.log; PostgreSQL's log must have it too.
                    if !r.alreadyArchived, let d = r.meta.summary?.damage(for: name) {
                        logger.warning("\(ArchivePush.damageWarning(name: name.description, damage: d, displayPath: path))")
                    }
                    return r.alreadyArchived ? .alreadyArchived(r.meta) : .stored(r.meta)
                }
                // About another file under the same name, or another repository: push again.
                spool.consume(name.description)
            case .error(let message):
                // Reported once; the pusher retries when PostgreSQL asks again.
                spool.consume(name.description)
                if ValvePolicy.mayLetGo(afterMessage: message), let skipped = letGo("its push failed: " + message) { return skipped }
                _ = startDaemon(walDir: walDir, spool: spool, launch: &launch)
                throw AsyncError.pushFailed(name: name.description, reason: message)
            case .none:
                break
            }
            let now = Date()
            if now.timeIntervalSince(lastDaemonCheck) > 0.1 {
                if let failure = startDaemon(walDir: walDir, spool: spool, launch: &launch) {
                    if ValvePolicy.mayLetGo(afterMessage: failure.reason), let skipped = letGo("its push failed: " + failure.description) { return skipped }
                    // In back-off: wait for the next start when it comes before the deadline
                    // (the loop tries again), else report the failed start now.
                    guard case .daemonBackoff(_, _, let retryIn, _) = failure, now.addingTimeInterval(retryIn) < deadline else { throw failure }
                }
                lastDaemonCheck = now
            }
            if now > deadline {
                if let skipped = letGo("its push did not complete within archive-push-timeout \(timeout) s") { return skipped }
                // A pusher start failed during this call: that is why nothing was stored, say so.
                if let f = spool.failedStart(), f.failedAt >= started.timeIntervalSince1970 {
                    throw AsyncError.daemonBackoff(reason: f.reason, failures: f.failures, retryIn: f.remaining(), log: spool.logPath)
                }
                throw AsyncError.timedOut(name: name.description, seconds: timeout)
            }
            usleep(Self.pollInterval)
        }
    }

    /// The pusher this process started, to notice a start that failed.
    struct Launch {
        var pid: pid_t?
        var at = Date.distantPast
    }

    /// `ensureDaemon`, its failure as a value.
    func startDaemon(walDir: String, spool: ArchiveSpool, launch: inout Launch) -> AsyncError? {
        do { try ensureDaemon(walDir: walDir, spool: spool, launch: &launch); return nil } catch { return error }
    }

    /// Starts the background pusher unless one holds the spool's lock, or its last start failed
    /// less than the back-off ago (`DaemonStartFailure`): then it throws `daemonBackoff`, and the
    /// caller waits for the back-off to end within its timeout or reports the failed start, instead
    /// of starting a pusher every 100 ms.
    func ensureDaemon(walDir: String, spool: ArchiveSpool, launch: inout Launch) throws(AsyncError) {
        if let pid = launch.pid {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            // The pusher this call started is still starting (or running): never a second one.
            if r == 0 { return }
            if r == pid {
                launch.pid = nil
                let exited = status & 0x7f == 0, code = (status >> 8) & 0xff
                // A pusher that failed before recording why (a crash, a spool it could not use).
                if !(exited && code == 0), (spool.failedStart()?.failedAt ?? 0) < launch.at.timeIntervalSince1970 {
                    spool.recordFailedStart(reason: exited ? "the background pusher exited with status \(code) at start (see \(spool.logPath))"
                                                           : "the background pusher was killed by signal \(status & 0x7f) (see \(spool.logPath))")
                }
            } else {
                launch.pid = nil
            }
        }
        reapChildren()
        if SpoolLock.isHeld(spool.lockPath) { return }
        if let f = spool.failedStart(), f.remaining() > 0 {
            throw .daemonBackoff(reason: f.reason, failures: f.failures, retryIn: f.remaining(), log: spool.logPath)
        }
        do {
            launch.at = Date()
            launch.pid = try DaemonLauncher.spawn(arguments: ["archive-push-async-daemon", "--wal-dir", walDir, "--spool", spool.root],
                                                  config: config, logPath: spool.logPath)
        } catch {
            spool.recordFailedStart(reason: error.description)
            throw error
        }
    }
}

/// The background pusher's life: take the spool lock (or leave: one pusher per cluster), push
/// whatever PostgreSQL has marked ready until nothing has been ready for `idleExit` seconds, then
/// exit. Results go to the spool; messages to `daemon.log` (its logger: `WalctlLog.daemon`).
public struct AsyncPushDaemon {
    public var config: Configuration
    public var walDir: String
    public var spool: ArchiveSpool
    /// Seconds without work before the pusher exits.
    public var idleExit: TimeInterval = 3
    /// Its messages: a failed start or push at error, warnings (damaged WAL, the valve) at warning,
    /// the pusher's own events at notice; the repository's S3 warnings too.
    public var logger: Logger

    public init(config: Configuration, walDir: String, spoolRoot: String, logger: Logger) {
        self.config = config; self.walDir = walDir; self.spool = ArchiveSpool(root: spoolRoot); self.logger = logger
    }

    /// Runs until idle. Returns false when another pusher already holds the lock.
    @discardableResult
    public func run() throws -> Bool {
        try spool.prepare()
        let held: SpoolLock?
        do { held = try SpoolLock.tryAcquire(spool.lockPath) } catch {
            let f = spool.recordFailedStart(reason: AsyncArchive.describe(error))
            logger.error("start failed (\(f.failures) in a row): \(f.reason); the next start waits \(Int(f.backoff)) s")
            throw error
        }
        guard let lock = held else { return false }
        defer { lock.release() }
        lock.writePID()
        let engine: PushEngine
        let repository: Repository
        do {
            repository = try RepositoryFactory.open(config, logger: logger)
            guard let info = try repository.info() else { throw WalctlError.notInitialised(repository: repository.url) }
            var pusher = try ArchivePush(config: config, repository: repository, logger: logger)
            if let path = config[.catalog] { pusher.recorder = DaemonCatalogRecorder(path: path) }
            let workers = max(1, try config.int(.archiveWorkers) ?? 2)
            engine = PushEngine(pusher: pusher, info: info, spool: spool, walDir: walDir, repositorySetting: config[.repository] ?? "",
                                compressWorkers: workers, uploadWorkers: workers * 2,
                                stageMax: Int64(try config.int(.archiveSpoolMax) ?? 1 << 30), logger: logger)
        } catch {
            // Once per failed start: the foreground starts the next pusher only after the back-off.
            let f = spool.recordFailedStart(reason: AsyncArchive.describe(error))
            logger.error("start failed (\(f.failures) in a row): \(f.reason); the next start waits \(Int(f.backoff)) s")
            throw error
        }
        if spool.failedStart() != nil {
            spool.clearFailedStart()
            logger.notice("started after earlier failed starts: back-off cleared")
        }
        engine.start()
        defer { engine.stop() }
        try runLoop(engine: engine, repository: repository, lock: lock)
        return true
    }

    func runLoop(engine: PushEngine, repository: Repository, lock: SpoolLock? = nil) throws {
        var lastWork = Date()
        var lastHousekeeping = Date.distantPast
        var lastScan = Date.distantPast
        var known: [String: ReadyFile] = [:]
        var ready: [ReadyFile] = []
        while true {
            let now = Date()
            // Look for new work when the workers are about to run dry, or every quarter second
            // anyway: a rescan costs two directory reads, but at 100 rounds a second a per-file
            // check of hundreds of ready files used more CPU than a segment's checksum.
            if engine.queuedCount < 2 * engine.compressWorkers || now.timeIntervalSince(lastScan) > 0.25 {
                lastScan = now
                ready = ReadyScanner.scan(walDir: walDir, known: known)
                known = Dictionary(ready.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
                let (results, skipped) = spool.resultAndSkippedNames()
                // A file pushed a moment ago whose `.ok` PostgreSQL's archive_command already
                // consumed still has its `.ready` until PostgreSQL renames it: not new work.
                let todo = ready.filter { !results.contains($0.name) && !skipped.contains($0.name) && !engine.wasPushedRecently($0.name) }
                engine.submit(todo)
            }
            if engine.busy { lastWork = now }
            if now.timeIntervalSince(lastHousekeeping) > 1 {
                lastHousekeeping = now
                if let lock, !lock.isStillAtPath || !SpoolFS.exists(walDir + "/archive_status") {
                    logger.notice("the spool or \(walDir) was removed: stopping")
                    break
                }
                spool.dropOrphans(walDir: walDir)
                if !spool.skipRecords().isEmpty { SafetyValve.flushPending(spool: spool, repository: repository, logger: logger) }
                let backlog = ReadyScanner.backlog(ready)
                let snap = DaemonSnapshot(pid: getpid(), walDir: walDir, updatedAt: PGTimestamp(date: now), readyFiles: ready.count,
                                          readyBytes: backlog.bytes, inFlight: engine.inFlightCount, stagedBytes: engine.stagedBytes,
                                          pushed: engine.pushed, failed: engine.failed)
                try? SpoolFS.write(spool.statusPath, SpoolFS.encode(snap))
            }
            if !engine.busy && now.timeIntervalSince(lastWork) > idleExit { break }
            engine.waitForProgress(timeout: engine.busy ? 0.01 : 0.02)
        }
        var snap = SpoolFS.decode(DaemonSnapshot.self, spool.statusPath)
        snap?.inFlight = 0
        snap?.stagedBytes = 0
        if let snap { try? SpoolFS.write(spool.statusPath, SpoolFS.encode(snap)) }
    }
}
