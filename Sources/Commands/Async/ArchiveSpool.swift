import Foundation
import Storage
import WALFormat

/// A file PostgreSQL has marked ready for archiving (`pg_wal/archive_status/<name>.ready`).
public struct ReadyFile: Equatable, Sendable {
    public var name: String
    /// Size of `pg_wal/<name>` (0 when it vanished between the listing and the stat).
    public var size: Int64
    /// When the `.ready` file was written (the segment was completed), seconds since 1970.
    public var readySince: TimeInterval
}

/// Finds the files PostgreSQL wants archived, in the order its archiver would take them:
/// timeline history files first, then everything else by name (oldest WAL first).
public enum ReadyScanner {
    /// Every `.ready` file in `walDir/archive_status` whose name is a WAL file name walctl accepts.
    /// Names found in `known` (an earlier scan) are taken from it without a `stat`: a `.ready`
    /// file's WAL file does not change size, so a long-running pusher's rescan is one directory read.
    public static func scan(walDir: String, known: [String: ReadyFile] = [:]) -> [ReadyFile] {
        let status = walDir + "/archive_status"
        var out: [ReadyFile] = []
        for entry in SpoolFS.list(status) where entry.hasSuffix(".ready") {
            let name = String(entry.dropLast(6))
            if let f = known[name] { out.append(f); continue }
            guard WALFileName(name) != nil else { continue }
            let readyStat = SpoolFS.fileInfo(status + "/" + entry)
            let size = SpoolFS.fileInfo(walDir + "/" + name)?.size ?? 0
            out.append(ReadyFile(name: name, size: size, readySince: Double(readyStat?.mtimeNs ?? 0) / 1e9))
        }
        return sortForArchiving(out)
    }

    /// History files first (a new timeline must be archived before its segments), then by name.
    public static func sortForArchiving(_ files: [ReadyFile]) -> [ReadyFile] {
        files.sorted { a, b in
            let ha = a.name.hasSuffix(".history"), hb = b.name.hasSuffix(".history")
            if ha != hb { return ha }
            return a.name < b.name
        }
    }

    /// Bytes of WAL waiting, and the age in seconds of the oldest `.ready` file.
    public static func backlog(_ files: [ReadyFile], now: Date = Date()) -> (bytes: Int64, oldestAge: TimeInterval) {
        let bytes = files.reduce(Int64(0)) { $0 + $1.size }
        let oldest = files.map(\.readySince).filter { $0 > 0 }.min()
        return (bytes, oldest.map { max(0, now.timeIntervalSince1970 - $0) } ?? 0)
    }
}

/// What the background pusher writes for one file it stored: enough for the foreground to be sure
/// the record is about this very file in this very repository, without touching the repository.
public struct PushRecord: Codable, Equatable, Sendable {
    /// The `repository` setting the daemon pushed to.
    public var repository: String
    public var sourceSize: Int64
    /// Modification time of the source file, nanoseconds (a recycled or rewritten file differs).
    public var sourceMTimeNs: Int64
    /// The committed meta (written before this record).
    public var meta: ArchivedFileMeta
    /// True when the repository already had identical content (a re-push).
    public var alreadyArchived: Bool
}

/// The archive spool: per-file results of the background pusher, the daemon's lock and log, and the
/// safety valve's records.
///
/// ```
/// <spool>/archive/daemon.lock         flock(2) held by the running pusher (its pid inside)
/// <spool>/archive/daemon.log          the pusher's messages
/// <spool>/archive/status.json         the pusher's last backlog snapshot (walctl info)
/// <spool>/archive/<name>.ok           stored (PushRecord JSON); removed by the foreground that reports it
/// <spool>/archive/<name>.error        failed, one line; removed by the foreground that reports it
/// <spool>/archive/skipped/<name>.json safety valve: reported archived WITHOUT being stored (SkipRecord)
/// ```
public struct ArchiveSpool {
    public let root: String
    public var dir: String { root + "/archive" }
    public var lockPath: String { dir + "/daemon.lock" }
    public var logPath: String { dir + "/daemon.log" }
    public var statusPath: String { dir + "/status.json" }
    public var skippedDir: String { dir + "/skipped" }

    public init(root: String) { self.root = root }

    /// The spool for a cluster whose WAL directory is `walDir` (docs/async.md, "Spool location"):
    /// `spool-path` when set; else `<data directory>/walctl_spool` when `walDir` is a data
    /// directory's `pg_wal` (or `pgdata` is set); else a directory of the running user's own,
    /// `/var/lib/walctl/<key>` when that directory exists and belongs to the user, or
    /// `~/.local/state/walctl/<key>` (`$XDG_STATE_HOME/walctl/<key>`), one per WAL directory. Never a
    /// shared directory such as /tmp: `SpoolFS.makeDirectory` refuses one another user can change.
    public static func rootPath(config: Configuration, walDir: String) -> String {
        if let p = config[.spoolPath], !p.isEmpty { return SpoolFS.absolute(p) }
        if (walDir as NSString).lastPathComponent == "pg_wal" { return (walDir as NSString).deletingLastPathComponent + "/walctl_spool" }
        if let d = config[.pgdata], !d.isEmpty { return SpoolFS.absolute(d) + "/walctl_spool" }
        return userStateDirectory() + "/" + spoolKey(walDir)
    }

    /// The running user's own state directory for walctl.
    static func userStateDirectory() -> String {
        var st = Glibc.stat()
        if lstat("/var/lib/walctl", &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid() { return "/var/lib/walctl" }
        let env = ProcessInfo.processInfo.environment
        if let x = env["XDG_STATE_HOME"], x.hasPrefix("/") { return x + "/walctl" }
        var home = env["HOME"] ?? ""
        if !home.hasPrefix("/"), let pw = getpwuid(geteuid()) { home = String(cString: pw.pointee.pw_dir) }
        return home + "/.local/state/walctl"
    }

    /// `spool-<last component>-<FNV-1a of the path>`: one spool per WAL directory.
    static func spoolKey(_ walDir: String) -> String {
        var h: UInt64 = 0xcbf29ce484222325
        for b in walDir.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        let last = (walDir as NSString).lastPathComponent.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }
        return "spool-" + String(last.prefix(40)) + "-" + String(h, radix: 16)
    }

    /// Creates the spool (mode 0700) or checks it: the root, `archive/` and `archive/skipped/` must
    /// be real directories of the running user that nobody else can write (SpoolFS.makeDirectory).
    public func prepare() throws(WalctlError) {
        try SpoolFS.makeDirectory(skippedDir, privateFrom: root)
    }

    // MARK: daemon start-ups

    /// `<spool>/archive/daemon.failed`: the last failed start of the pusher, for the back-off.
    public var failedStartPath: String { dir + "/daemon.failed" }

    /// The last failed start, or nil when the last start succeeded.
    public func failedStart() -> DaemonStartFailure? { SpoolFS.decode(DaemonStartFailure.self, failedStartPath) }

    /// Records a failed start (one more in a row) and returns it.
    @discardableResult
    public func recordFailedStart(reason: String, now: Date = Date()) -> DaemonStartFailure {
        let f = DaemonStartFailure(failedAt: now.timeIntervalSince1970, failures: (failedStart()?.failures ?? 0) + 1, reason: reason)
        try? SpoolFS.write(failedStartPath, SpoolFS.encode(f))
        return f
    }

    /// A start succeeded: the back-off is over.
    public func clearFailedStart() { unlink(failedStartPath) }

    /// The result the pusher left for `name`.
    public enum Result: Equatable {
        case none
        case ok(PushRecord)
        case error(String)
    }

    public func result(_ name: String) -> Result {
        if let r = SpoolFS.decode(PushRecord.self, dir + "/" + name + ".ok") { return .ok(r) }
        if let e = SpoolFS.read(dir + "/" + name + ".error") {
            return .error(String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return .none
    }

    /// The names with a result (`.ok` or `.error`) and the names skipped by the valve, each from
    /// one directory read (the pusher's loop asks for hundreds of names at a time).
    public func resultAndSkippedNames() -> (results: Set<String>, skipped: Set<String>) {
        var results = Set<String>()
        for f in SpoolFS.list(dir) {
            if f.hasSuffix(".ok") { results.insert(String(f.dropLast(3))) } else if f.hasSuffix(".error") { results.insert(String(f.dropLast(6))) }
        }
        let skipped = Set(SpoolFS.list(skippedDir).filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) })
        return (results, skipped)
    }

    public func writeOK(_ name: String, _ record: PushRecord) throws(WalctlError) {
        unlink(dir + "/" + name + ".error")
        try SpoolFS.write(dir + "/" + name + ".ok", SpoolFS.encode(record))
    }

    public func writeError(_ name: String, _ message: String) throws(WalctlError) {
        try SpoolFS.write(dir + "/" + name + ".error", Array((message + "\n").utf8))
    }

    /// Removes the result once the foreground has reported it.
    public func consume(_ name: String) {
        unlink(dir + "/" + name + ".ok")
        unlink(dir + "/" + name + ".error")
    }

    /// Results whose `.ready` file is gone (PostgreSQL moved on) are dropped.
    public func dropOrphans(walDir: String) {
        for f in SpoolFS.list(dir) where f.hasSuffix(".ok") || f.hasSuffix(".error") {
            let name = f.hasSuffix(".ok") ? String(f.dropLast(3)) : String(f.dropLast(6))
            if !SpoolFS.exists(walDir + "/archive_status/" + name + ".ready") { unlink(dir + "/" + f) }
        }
    }

    /// Counts of results waiting to be reported.
    public func resultCounts() -> (ok: Int, error: Int) {
        let files = SpoolFS.list(dir)
        return (files.filter { $0.hasSuffix(".ok") }.count, files.filter { $0.hasSuffix(".error") }.count)
    }

    // MARK: safety valve records

    public func writeSkip(_ record: SkipRecord) throws(WalctlError) {
        try SpoolFS.write(skippedDir + "/" + record.name + ".json", SpoolFS.encode(record), durable: true)
    }

    public func skipRecords() -> [SkipRecord] {
        SpoolFS.list(skippedDir).filter { $0.hasSuffix(".json") }.sorted()
            .compactMap { SpoolFS.decode(SkipRecord.self, skippedDir + "/" + $0) }
    }

    public func removeSkip(_ name: String) { unlink(skippedDir + "/" + name + ".json") }
}

/// The pusher's last failed start: a pusher that cannot start (a repository that is gone, a bad
/// setting) is started again only after `backoff` seconds, 1 s doubling up to 60 s, not at every
/// look of every waiting archive-push (docs/async.md).
public struct DaemonStartFailure: Codable, Equatable, Sendable {
    /// Seconds since 1970.
    public var failedAt: Double
    /// Failed starts in a row.
    public var failures: Int
    /// Why (with walctl's error code when there is one).
    public var reason: String

    /// Seconds to wait after the last failed start.
    public static func backoff(failures: Int) -> Double { min(60, Double(1 << min(max(failures, 1) - 1, 6))) }
    public var backoff: Double { Self.backoff(failures: failures) }
    /// Seconds left before the next start may be tried (0: now).
    public func remaining(now: Date = Date()) -> Double { max(0, failedAt + backoff - now.timeIntervalSince1970) }
}

/// The pusher's snapshot, written about once a second while it runs.
public struct DaemonSnapshot: Codable, Equatable, Sendable {
    public var pid: Int32
    public var walDir: String
    public var updatedAt: PGTimestamp
    public var readyFiles: Int
    public var readyBytes: Int64
    public var inFlight: Int
    public var stagedBytes: Int64
    public var pushed: Int
    public var failed: Int
}

/// The archive backlog for `walctl info`: what waits in `pg_wal`, what the pusher does, and every
/// file the safety valve let go without storing it (PITR is broken across each of them).
public struct SpoolStatus: Sendable {
    public var spool: String
    public var daemonRunning: Bool
    public var walDir: String?
    public var readyFiles: Int
    public var readyBytes: Int64
    public var oldestReadyAge: TimeInterval
    public var pendingOK: Int
    public var pendingErrors: Int
    public var snapshot: DaemonSnapshot?
    public var skipped: [SkipRecord]

    /// The status for the configured cluster, or nil when neither `spool-path` nor `pgdata` says
    /// where the spool is, or the spool was never used.
    public static func load(config: Configuration) -> SpoolStatus? {
        var walDir: String? = config[.pgdata].map { $0 + "/pg_wal" }
        let root: String
        if let p = config[.spoolPath], !p.isEmpty { root = p } else if let w = walDir { root = ArchiveSpool.rootPath(config: config, walDir: w) } else { return nil }
        let spool = ArchiveSpool(root: root)
        guard SpoolFS.exists(spool.dir) else { return nil }
        let snap = SpoolFS.decode(DaemonSnapshot.self, spool.statusPath)
        if walDir == nil { walDir = snap?.walDir }
        let ready = walDir.map { ReadyScanner.scan(walDir: $0) } ?? []
        let backlog = ReadyScanner.backlog(ready)
        let counts = spool.resultCounts()
        return SpoolStatus(spool: root, daemonRunning: SpoolLock.isHeld(spool.lockPath), walDir: walDir,
                           readyFiles: ready.count, readyBytes: backlog.bytes, oldestReadyAge: backlog.oldestAge,
                           pendingOK: counts.ok, pendingErrors: counts.error, snapshot: snap, skipped: spool.skipRecords())
    }

    /// Lines for the text `walctl info`.
    public var lines: [String] {
        var out = ["archive backlog: \(Human.count(readyFiles, "file")) ready (\(Human.bytes(readyBytes)), oldest \(Int(oldestReadyAge)) s) in \(walDir ?? "?"); "
                   + "async pusher \(daemonRunning ? "running" : "idle"); spool \(spool) (\(pendingOK) ok, \(Human.count(pendingErrors, "error")) unreported)"]
        if !skipped.isEmpty {
            out.append("PITR BROKEN: \(Human.count(skipped.count, "file")) reported archived WITHOUT being stored (safety valve):")
            for s in skipped {
                out.append("  SKIPPED  \(s.name)  at \(s.skippedAt.iso8601)  \(s.reason)\(s.markerStored ? "" : "  (marker not yet in the repository)")")
            }
        }
        return out
    }
}
