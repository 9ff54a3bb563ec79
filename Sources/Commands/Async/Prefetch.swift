import Foundation
import LocalFS
import Storage
import WALFormat
import Planner
import FastPath
import Logging

/// What the prefetcher keeps beside each fetched segment: the meta it was verified against and
/// the repository it came from. The foreground serves the segment only when this still equals the
/// repository's current meta.
public struct PrefetchRecord: Codable, Equatable, Sendable {
    public var repository: String
    public var meta: ArchivedFileMeta
    /// The kernel boot the segment was written in. Spool files are not fsynced (a cache, and
    /// fsyncing 16 MiB per segment competes with replay for the disk): after an OS crash their
    /// content is unknown, so a record from another boot is never served.
    public var bootID: String?

    public init(repository: String, meta: ArchivedFileMeta, bootID: String? = PrefetchRecord.currentBootID) {
        self.repository = repository; self.meta = meta; self.bootID = bootID
    }

    /// `/proc/sys/kernel/random/boot_id`, read once.
    public static let currentBootID: String? = SpoolFS.read("/proc/sys/kernel/random/boot_id")
        .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// The restore spool, next to `%p` (`pg_wal/walctl_prefetch/`, same filesystem, so serving a
/// segment is one `rename(2)`):
///
/// ```
/// <spool>/daemon.lock       flock(2) held by the running prefetcher
/// <spool>/daemon.log        its messages
/// <spool>/want              the segment recovery asked for last (the window starts after it)
/// <spool>/stop              asks the prefetcher to clean up and exit (end of recovery, --cleanup)
/// <spool>/<segment>         a complete, verified segment (written as .<segment>.walctl-tmp.*, renamed)
/// <spool>/<segment>.rec     its PrefetchRecord, written after the segment: both present = servable
/// <spool>/<segment>.busy    the prefetcher is fetching it now
/// ```
///
/// The directory's life (docs/async.md, "The spool's life"): a foreground uses the spool only
/// under a shared `SpoolDirectoryLock` on the directory, and the directory is removed only under
/// the exclusive one, so it never vanishes under a foreground. Everything else that deletes
/// (`clear`, `remove(_:)`, the window's clean-up) deletes only the prefetcher's own files, which a
/// foreground treats as a cache: a file gone means "fetch directly", never an error.
public struct PrefetchSpool {
    public let dir: String
    public var lockPath: String { dir + "/daemon.lock" }
    public var logPath: String { dir + "/daemon.log" }
    public var wantPath: String { dir + "/want" }
    public var stopPath: String { dir + "/stop" }

    public init(dir: String) { self.dir = dir }

    /// The spool for a restore target path `%p`: `<dir of %p>/walctl_prefetch`.
    public init(targetPath: String) {
        dir = (SpoolFS.absolute(targetPath) as NSString).deletingLastPathComponent + "/walctl_prefetch"
    }

    public func prepare() throws(WalctlError) { try SpoolFS.makeDirectory(dir) }

    public func setWant(_ name: String) throws(WalctlError) {
        unlink(stopPath)
        try SpoolFS.write(wantPath, Array(name.utf8))
    }

    public func want() -> String? { SpoolFS.read(wantPath).map { String(decoding: $0, as: UTF8.self) } }

    public func record(_ name: String) -> PrefetchRecord? {
        guard SpoolFS.exists(dir + "/" + name) else { return nil }
        return SpoolFS.decode(PrefetchRecord.self, dir + "/" + name + ".rec")
    }

    public func isBusy(_ name: String) -> Bool { SpoolFS.exists(dir + "/" + name + ".busy") }

    /// Removes one entry (record first: without it the segment is never served).
    public func remove(_ name: String) {
        unlink(dir + "/" + name + ".rec")
        unlink(dir + "/" + name)
    }

    /// Segment names with a data file in the spool.
    public func entries() -> [String] {
        SpoolFS.list(dir).filter { $0.count == 24 && WALFileName($0) != nil }.sorted()
    }

    /// Bytes of complete segments in the spool.
    public func bytes() -> Int64 { entries().reduce(Int64(0)) { $0 + (SpoolFS.fileInfo(dir + "/" + $1)?.size ?? 0) } }

    /// True for the files the prefetcher writes (segments, records, `.busy` marks and their
    /// temporary files); false for the lock, the log, and `want`/`stop` with their temporary files,
    /// which foregrounds write: those are never deleted under a writer.
    static func isPrefetcherFile(_ name: String) -> Bool {
        !(name.hasPrefix("daemon.") || name.hasPrefix("want") || name.hasPrefix("stop"))
    }

    /// Removes every segment, record and temporary file of the prefetcher (the lock, the log, and
    /// what foregrounds write stay).
    public func clear() {
        for f in SpoolFS.list(dir) where Self.isPrefetcherFile(f) { unlink(dir + "/" + f) }
    }

    /// End of recovery: ask the prefetcher to stop, and clean up. Best effort: the spool may be
    /// gone already.
    public func shutDown() {
        guard SpoolFS.exists(dir) else { return }
        try? SpoolFS.write(stopPath, [])
        clear()
    }

    /// Removes the whole spool (`walctl archive-get --cleanup`): asks the prefetcher to stop, gives
    /// it 5 s to remove the spool itself, then removes what is left under the exclusive directory
    /// lock. A prefetcher still running then (a fetch in flight) removes it when it exits.
    public func remove() {
        guard SpoolFS.exists(dir) else { return }
        if let lock = SpoolDirectoryLock.shared(dir, create: false) {
            shutDown()
            lock.release()
        }
        let end = monotonicSeconds() + 5
        while SpoolLock.isHeld(lockPath) && monotonicSeconds() < end { usleep(5_000) }
        if !SpoolLock.isHeld(lockPath) { removeDirectory(onlyIfStopped: false) }
    }

    /// Removes the directory and everything in it, under the exclusive directory lock (waiting up
    /// to 5 s for foregrounds to finish with it). With `onlyIfStopped`, only while `stop` is still
    /// there: a foreground that came after the stop request removed it (recovery asked again), and
    /// the spool then stays for the prefetcher it starts. True when the directory is gone.
    @discardableResult
    public func removeDirectory(onlyIfStopped: Bool) -> Bool {
        guard let lock = SpoolDirectoryLock.exclusive(dir) else { return !SpoolFS.exists(dir) }
        defer { lock.release() }
        if onlyIfStopped && !SpoolFS.exists(stopPath) { return false }
        for f in SpoolFS.list(dir) { unlink(dir + "/" + f) }
        return rmdir(dir) == 0
    }
}

/// The prefetching archive-get (`restore-prefetch` N > 0) as `Archiver.get` uses it.
///
/// For segment X: if the spool holds X and its record equals the repository's current meta for X,
/// X is renamed into `%p` (no download). Otherwise X is fetched directly, as without prefetching.
/// Either way the prefetcher is told that recovery is at X and started if it is not running; it
/// fetches X+1 .. X+N (same timeline) in parallel, stopping at the first one that is not archived.
/// A name that is not found ends the prefetch (recovery is ending) and cleans the spool.
///
/// The spool is a cache: nothing that goes wrong with it (absent, being removed by a stopping
/// prefetcher, unwritable, the prefetcher not starting) fails the call. The call then fetches
/// directly and says why at `log-level = debug`. Only the repository decides the answer.
public struct PrefetchGet {
    public var config: Configuration
    /// The CLI's logger: why the spool was not used, at debug.
    public var logger: Logger
    /// Starts the prefetcher for a spool (tests run it in-process); nil: `DaemonLauncher`.
    public var launchDaemon: ((PrefetchSpool) throws -> Void)?

    public init(config: Configuration, logger: Logger = WalctlLog.silent) { self.config = config; self.logger = logger }

    /// Handles archive-get when `restore-prefetch` > 0; nil otherwise.
    public func getIfEnabled(fileName: String, targetPath: String, direct: (Repository) throws -> GetOutcome) throws -> GetOutcome? {
        guard let n = try config.int(.restorePrefetch), n > 0 else { return nil }
        guard let name = WALFileName(fileName) else { throw WalctlError.invalidName(fileName) }
        let spool = PrefetchSpool(targetPath: targetPath)
        let repository = try RepositoryFactory.open(config, logger: logger)
        guard case .segment = name else {
            let outcome = try direct(repository)
            // A timeline history that exists may change which timeline recovery follows: what
            // was prefetched may be the wrong branch. Start over.
            if case .restored = outcome, case .history = name, let lock = SpoolDirectoryLock.shared(spool.dir, create: false) {
                spool.clear()
                lock.release()
            }
            return outcome
        }
        if let served = useSpool(fileName: fileName, targetPath: targetPath, spool: spool, repository: repository) { return served }
        let outcome = try direct(repository)
        if case .notFound = outcome, let lock = SpoolDirectoryLock.shared(spool.dir, create: false) {
            spool.shutDown()
            lock.release()
        }
        return outcome
    }

    /// The spool's part of one call, under the shared directory lock: write `want`, serve the
    /// segment when the spool holds it, make sure the prefetcher runs. nil: fetch directly. The
    /// lock is released before the direct fetch (which may retry for minutes).
    func useSpool(fileName: String, targetPath: String, spool: PrefetchSpool, repository: Repository) -> GetOutcome? {
        guard let lock = SpoolDirectoryLock.shared(spool.dir, create: true) else {
            logger.debug("prefetch spool \(spool.dir) is unavailable (absent, being removed, or not writable): fetching \(fileName) directly")
            return nil
        }
        defer { lock.release() }
        do { try spool.setWant(fileName) } catch {
            logger.debug("cannot write the prefetch request (\(error)): fetching \(fileName) directly")
            return nil
        }
        var served: GetOutcome?
        do { served = try serve(name: fileName, targetPath: targetPath, spool: spool, repository: repository) } catch {
            logger.debug("cannot serve \(fileName) from the prefetch spool (\(error)): fetching it directly")
        }
        do { try ensureDaemon(spool: spool) } catch {
            logger.debug("cannot start the prefetcher (\(error)); recovery goes on without it")
        }
        return served
    }

    /// Serves `name` from the spool when it is there, complete, and still what the repository
    /// holds; waits for it while the prefetcher is fetching it (bounded). nil: fetch directly.
    func serve(name: String, targetPath: String, spool: PrefetchSpool, repository: Repository) throws -> GetOutcome? {
        let waitEnd = Date().addingTimeInterval(30)
        while spool.record(name) == nil && spool.isBusy(name) && SpoolLock.isHeld(spool.lockPath) && Date() < waitEnd {
            usleep(1_000)
        }
        guard let rec = spool.record(name), let wal = WALFileName(name) else { return nil }
        let current: ArchivedFileMeta?
        do { current = try repository.meta(for: wal) } catch { return nil }   // in doubt: fetch directly
        guard let current, current == rec.meta, rec.repository == (config[.repository] ?? ""),
              rec.bootID != nil, rec.bootID == PrefetchRecord.currentBootID else {
            spool.remove(name)
            return nil
        }
        // archive-get-fsync: the served file is made durable as a fetched one would be (spool
        // files are written without fsync).
        if (try? config.bool(.archiveGetFsync)) == true {
            guard (try? LocalFS.syncFile(spool.dir + "/" + name)) != nil else { return nil }
        }
        unlink(spool.dir + "/" + name + ".rec")
        if rename(spool.dir + "/" + name, targetPath) != 0 {
            unlink(spool.dir + "/" + name)
            return nil
        }
        return .restored(current)
    }

    func ensureDaemon(spool: PrefetchSpool) throws {
        reapChildren()
        if SpoolLock.isHeld(spool.lockPath) { return }
        if let launchDaemon { try launchDaemon(spool); return }
        var arguments = ["archive-get-prefetch-daemon", "--spool", spool.dir]
        // Under `walctl recover` the server runs restore_command in the data directory, where the
        // plan is: the prefetcher then stops at the end of the planned range.
        let plan = FileManager.default.currentDirectoryPath + "/" + RecoveryFiles.plan
        if SpoolFS.exists(plan) { arguments += ["--plan", plan] }
        try DaemonLauncher.spawn(arguments: arguments, config: config, logPath: spool.logPath)
    }
}

/// The background prefetcher: one per restore spool (flock), it keeps the window after the last
/// requested segment filled, cleans what falls out of it, and exits (cleaning up) when asked to stop
/// or when recovery has asked for nothing for `idleExit` seconds.
public final class PrefetchDaemon: @unchecked Sendable {
    let spool: PrefetchSpool
    let repository: Repository
    let repositorySetting: String
    let depth: Int
    let spoolMax: Int64
    let workers: Int
    let segmentSize: WALSegmentSize
    /// Its messages (`WalctlLog.daemon`: the spool's daemon.log): a failed fetch at warning.
    let logger: Logger
    public var idleExit: TimeInterval = 30
    /// The last planned segment per timeline (`walctl recover`'s plan): the window never passes it.
    public var planEnd: [TimeLineID: XLogSegNo] = [:]
    /// How long a segment found missing is not asked for again.
    public var missingRecheck: TimeInterval = 1

    private let cond = NSCondition()
    private var queue: [String] = []
    private var busy: Set<String> = []
    /// Complete in the spool (segment and record), as far as this prefetcher knows: the window is
    /// checked against this set instead of reading and decoding every record each round.
    private var fetched: Set<String> = []
    /// Bumped by a worker at the end of each fetch: the loop then takes another step.
    private var completions = 0
    private var missing: [String: Date] = [:]
    private var stopping = false

    public init(spool: PrefetchSpool, repository: Repository, repositorySetting: String, depth: Int, spoolMax: Int64, workers: Int,
                segmentSize: WALSegmentSize, logger: Logger) {
        self.spool = spool; self.repository = repository; self.repositorySetting = repositorySetting; self.depth = depth
        self.spoolMax = spoolMax; self.workers = max(1, workers); self.segmentSize = segmentSize; self.logger = logger
    }

    /// The last segment of each timeline's range in a saved plan (`walctl_recovery_plan.json`);
    /// empty when the file cannot be read.
    public static func planEnds(planPath: String) -> [TimeLineID: XLogSegNo] {
        guard let plan = SpoolFS.decode(RecoveryPlan.self, planPath) else { return [:] }
        var out: [TimeLineID: XLogSegNo] = [:]
        for r in plan.segmentRanges { out[r.timeline] = max(out[r.timeline] ?? 0, r.lastSegno) }
        return out
    }

    public static func make(config: Configuration, spoolDir: String, planPath: String? = nil, logger: Logger) throws -> PrefetchDaemon {
        let repository = try RepositoryFactory.open(config, logger: logger)
        guard let info = try repository.info(), let size = info.segmentSize else { throw WalctlError.notInitialised(repository: repository.url) }
        let depth = try config.int(.restorePrefetch) ?? 0
        // One fetch at a time keeps a local repository ahead of replay (decompression is faster
        // than replay) while leaving replay a core of its own; S3 hides request latency with more.
        var workers = try config.int(.restoreWorkers) ?? 0
        if workers <= 0 { workers = repository.baseStore is FileStore ? 1 : 4 }
        let daemon = PrefetchDaemon(spool: PrefetchSpool(dir: spoolDir), repository: repository, repositorySetting: config[.repository] ?? "",
                                    depth: depth, spoolMax: Int64(try config.int(.restoreSpoolMax) ?? 1 << 30),
                                    workers: min(workers, 16), segmentSize: size, logger: logger)
        if let planPath { daemon.planEnd = planEnds(planPath: planPath) }
        return daemon
    }

    /// The segments to hold after `want`: the next `depth`, same timeline, within `spoolMax`.
    public func window(after want: String) -> [String] {
        guard let id = SegmentID(fileName: want, size: segmentSize) else { return [] }
        let byBytes = Int(max(1, spoolMax / Int64(segmentSize.bytes)))
        var n = min(depth, byBytes)
        if let last = planEnd[id.timeline] { n = last > id.segno ? min(n, Int(min(last - id.segno, UInt64(Int.max)))) : 0 }
        guard n > 0 else { return [] }
        return (1...n).map { SegmentID(timeline: id.timeline, segno: id.segno + XLogSegNo($0)).fileName(size: segmentSize) }
    }

    /// Runs until stopped or idle. Returns false when another prefetcher holds the lock.
    @discardableResult
    public func run() throws -> Bool {
        try spool.prepare()
        // The daemon lock is taken under the shared directory lock: never in a directory that a
        // stopping prefetcher is removing.
        guard let dirLock = SpoolDirectoryLock.shared(spool.dir, create: true) else { return false }
        guard let lock = try SpoolLock.tryAcquire(spool.lockPath) else { return false }
        dirLock.release()
        defer { lock.release() }
        lock.writePID()
        for e in spool.entries() where spool.record(e) != nil { fetched.insert(e) }
        for _ in 0..<workers { Thread.detachNewThread { self.workerLoop() } }
        defer { cond.lock(); stopping = true; cond.broadcast(); cond.unlock() }
        var lastWant = ""
        var lastChange = Date()
        var lastStep = Date.distantPast
        var lastCompletions = -1
        var lastStopCheck = Date.distantPast
        while true {
            let now = Date()
            // Cheap round every 3 ms: read `want`; a step (directory read, queueing) only when
            // recovery moved, a fetch ended, or 100 ms passed. Replay shares the CPU with this
            // loop, so it must cost next to nothing while nothing changes.
            if now.timeIntervalSince(lastStopCheck) > 0.05 {
                lastStopCheck = now
                if SpoolFS.exists(spool.stopPath) || !lock.isStillAtPath { break }
            }
            let want = spool.want() ?? ""
            let moved = want != lastWant
            if moved { lastWant = want; lastChange = now }
            if now.timeIntervalSince(lastChange) > idleExit { break }
            cond.lock(); let done = completions; cond.unlock()
            if moved || done != lastCompletions || now.timeIntervalSince(lastStep) > 0.1 {
                lastCompletions = done; lastStep = now
                step(want: want, now: now)
            }
            cond.lock(); _ = cond.wait(until: Date().addingTimeInterval(0.003)); cond.unlock()
        }
        // Let fetches in flight end before cleaning, so no file appears after the cleanup.
        cond.lock(); stopping = true; queue.removeAll(); cond.broadcast()
        let end = Date().addingTimeInterval(30)
        while !busy.isEmpty && cond.wait(until: end) {}
        cond.unlock()
        spool.clear()
        if SpoolFS.exists(spool.stopPath) {
            // Asked to stop (recovery ended, `--cleanup`): leave nothing in pg_wal. The directory
            // goes under its exclusive lock (no foreground is using it), and only while `stop` is
            // still there; the daemon lock file goes while still held, so no second prefetcher
            // can start on it.
            spool.removeDirectory(onlyIfStopped: true)
        }
        return true
    }

    /// One round: drop what left the window, queue what is missing from it, stop at the first
    /// segment the repository does not have.
    func step(want: String, now: Date) {
        let window = want.isEmpty ? [] : window(after: want)
        let keep = Set(window + [want])
        for e in spool.entries() where !keep.contains(e) {
            cond.lock(); let b = busy.contains(e); cond.unlock()
            if !b { spool.remove(e) }
        }
        cond.lock()
        defer { cond.unlock() }
        fetched = fetched.filter { keep.contains($0) }
        queue.removeAll { !keep.contains($0) }
        for name in window {
            if let m = missing[name] {
                if now.timeIntervalSince(m) < missingRecheck { break }   // not archived (yet): nothing beyond it
                missing[name] = nil
            }
            if busy.contains(name) || queue.contains(name) || fetched.contains(name) { continue }
            queue.append(name)
        }
        if !queue.isEmpty { cond.broadcast() }
    }

    private func workerLoop() {
        while true {
            cond.lock()
            while queue.isEmpty && !stopping { cond.wait() }
            if stopping { cond.unlock(); return }
            let name = queue.removeFirst()
            busy.insert(name)
            cond.unlock()
            _ = try? SpoolFS.write(spool.dir + "/" + name + ".busy", [])
            let result = fetch(name)
            unlink(spool.dir + "/" + name + ".busy")
            cond.lock()
            busy.remove(name)
            completions += 1
            if result == .stored { fetched.insert(name) }
            if result == .missing {
                missing[name] = Date()
                queue.removeAll { $0 > name }   // stop at the first missing segment
            }
            cond.broadcast()
            cond.unlock()
        }
    }

    /// What one fetch ended with.
    enum FetchResult: Equatable {
        /// Complete and verified in the spool.
        case stored
        /// The repository does not have it (yet).
        case missing
        /// Failed, or dropped because recovery moved on: the foreground fetches it directly.
        case dropped
    }

    /// Fetches one segment into the spool, verified.
    /// Failures are left to the foreground (which fetches directly, with its retries).
    func fetch(_ name: String) -> FetchResult {
        guard let wal = WALFileName(name) else { return .missing }
        do {
            guard let meta = try repository.meta(for: wal) else { return .missing }
            // Temporary name, then rename; no fsync (see PrefetchRecord.bootID).
            let out = try AtomicFile(path: spool.dir + "/" + name, durable: false)
            do {
                // Decoding and writing overlap (WriteBehind), as in archive-get: one worker keeps
                // two cores busy when the startup process leaves one free.
                try ObjectReader(repository: repository).restore(meta, to: out)
                try out.commit()
            } catch {
                out.abort()
                throw error
            }
            try SpoolFS.write(spool.dir + "/" + name + ".rec", SpoolFS.encode(PrefetchRecord(repository: repositorySetting, meta: meta)))
            // Recovery moved on (another timeline, or past it) while this was fetched.
            let w = spool.want() ?? ""
            if !(Set(window(after: w)).contains(name) || name == w) {
                spool.remove(name)
                return .dropped
            }
            return .stored
        } catch {
            logger.warning("prefetch of \(name) failed: \(error) (recovery will fetch it directly)")
            spool.remove(name)
            return .dropped
        }
    }
}
