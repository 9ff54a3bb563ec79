import Catalog
import Foundation
import Logging
import LocalFS
import Planner
import Storage
import WALFormat

/// What `walctl drill` is asked to do (docs/drills.md).
public struct DrillOptions {
    /// `.time` or `.latest`.
    public var target: RecoveryTarget
    /// Where the scratch directory is created (default: `DrillScratch.defaultBase()`).
    public var workdir: String?
    /// The server's port (it listens only on a Unix socket in the private scratch directory, so any
    /// number is free); default 5432.
    public var port: Int?
    /// `--check-sql` files, run in order after the built-in checks.
    public var checkSQL: [String]
    /// Keep the scratch directory (the server is stopped all the same).
    public var keep: Bool

    public init(target: RecoveryTarget, workdir: String? = nil, port: Int? = nil, checkSQL: [String] = [], keep: Bool = false) {
        self.target = target; self.workdir = workdir; self.port = port; self.checkSQL = checkSQL; self.keep = keep
    }
}

/// One measured part of a drill's recovery time (`DrillResult.phases`).
public struct DrillPhase: Codable, Equatable, Sendable {
    /// `plan`, `restore`, `start-up`, `wal-download`, `replay`, `checks`, `shutdown`, `record`.
    public var name: String
    public var seconds: Double
    /// Bytes the phase moved (restore: read from the repository; wal-download: stored WAL; replay: WAL replayed).
    public var bytes: Int64?
    public var bytesPerSecond: Double?
    public var detail: String?
}

/// One check's outcome.
public struct DrillCheck: Codable, Equatable, Sendable {
    /// `reached-target`, `amcheck`, `databases`, or `sql:<file>`.
    public var name: String
    /// `passed`, `failed` or `skipped`.
    public var status: String
    public var detail: String
    public var seconds: Double
}

/// Everything one drill measured and found: `--json` prints it, `drill/<timestamp>.json` stores it,
/// the catalog keeps its `DrillSummary` fields (same keys).
public struct DrillResult: Codable, Equatable, Sendable {
    public var formatVersion = 1
    public var key: String
    public var startedAt: PGTimestamp
    public var finishedAt: PGTimestamp
    public var passed: Bool
    /// Why it failed, one line (the refusal, the server's last error, the first failed check).
    public var failure: String?
    public var targetType: String
    public var targetValue: String?
    public var backupLabel: String?
    public var repository: String
    public var host: String
    public var user: String
    public var scratchDirectory: String
    public var kept: Bool
    public var serverBinaries: String?
    public var pgVersion: Int?
    public var plan: RecoveryPlan?
    public var refusal: PlanRefusal?
    /// The recovery's state from the server log (`walctl recover --status` reads the same).
    public var recovery: RecoveryStatus?
    /// The RTO parts, in order; they cover the drill from start to end without overlap.
    public var phases: [DrillPhase]
    /// Their sum: the drill's recovery time objective as measured.
    public var rtoSeconds: Double?
    /// The time the recovered data reaches to: the target, or for `latest` the last archived commit.
    public var recoveredTo: PGTimestamp?
    /// `startedAt - recoveredTo`: what a failure at the moment the drill ran would lose with this archive.
    public var rpoSeconds: Double?
    public var checks: [DrillCheck]

    public var summary: DrillSummary {
        DrillSummary(startedAt: startedAt, passed: passed, targetType: targetType, targetValue: targetValue, backupLabel: backupLabel,
                     rtoSeconds: rtoSeconds, rpoSeconds: rpoSeconds, failure: failure, key: key)
    }
}

/// The scratch directory's default home.
public enum DrillScratch {
    /// `$XDG_STATE_HOME/walctl/drill`, else `~/.local/state/walctl/drill` (the running user's home
    /// from the password database when HOME is unset).
    public static func defaultBase(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let x = environment["XDG_STATE_HOME"], x.hasPrefix("/") { return x + "/walctl/drill" }
        var home = environment["HOME"] ?? ""
        if home.isEmpty || !home.hasPrefix("/"), let pw = getpwuid(geteuid()), let d = pw.pointee.pw_dir { home = String(cString: d) }
        return home + "/.local/state/walctl/drill"
    }
}

/// Stops the drill's server and removes its scratch directory: at the end of a drill, and from the
/// SIGINT/SIGTERM handler (a second thread), whichever comes first; the lock makes it happen once.
final class DrillCleanup: @unchecked Sendable {
    private let lock = NSLock()
    private var serverPID: pid_t = 0
    private var scratch: String?
    private var pgwal: String?
    private var keep = false
    private var sources: [DispatchSourceSignal] = []
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func set(scratch: String, pgwal: String, keep: Bool) {
        lock.lock(); defer { lock.unlock() }
        self.scratch = scratch; self.pgwal = pgwal; self.keep = keep
    }

    func set(server pid: pid_t) {
        lock.lock(); defer { lock.unlock() }
        serverPID = pid
    }

    /// SIGINT and SIGTERM stop the server (fast, then immediate shutdown), remove the scratch
    /// directory (unless --keep) and exit 128 + the signal.
    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [self] in
                logger.notice("drill interrupted (signal \(sig)): stopping the server and cleaning up")
                stopServer()
                removeScratch()
                _exit(128 + sig)
            }
            s.resume()
            sources.append(s)
        }
    }

    /// Fast shutdown (SIGINT to the postmaster), after 30 s immediate (SIGQUIT), after 10 s more
    /// SIGKILL to its whole process group. Returns how it stopped.
    @discardableResult
    func stopServer() -> String? {
        lock.lock(); defer { lock.unlock() }
        let pid = serverPID
        guard pid > 0 else { return nil }
        serverPID = 0
        guard ChildProcess.isRunning(pid) else { return "had exited" }
        kill(pid, SIGINT)
        if ChildProcess.waitExit(pid, seconds: 30) { return "fast shutdown" }
        kill(pid, SIGQUIT)
        if ChildProcess.waitExit(pid, seconds: 10) { return "immediate shutdown" }
        kill(-pid, SIGKILL)
        _ = ChildProcess.waitExit(pid, seconds: 10)
        return "killed"
    }

    /// Stops a prefetcher still serving the drill's recovery and removes the scratch directory.
    func removeScratch() {
        lock.lock(); defer { lock.unlock() }
        if let pgwal { PrefetchSpool(dir: pgwal + "/walctl_prefetch").remove() }
        guard let dir = scratch, !keep else { return }
        scratch = nil
        for _ in 0..<3 {
            try? FileManager.default.removeItem(atPath: dir)
            if !FileManager.default.fileExists(atPath: dir) { break }
        }
    }
}

/// `walctl drill`: a recovery rehearsal. Plans like `walctl recover` (same refusals), restores into
/// a scratch directory, starts PostgreSQL there on a private socket, waits until recovery reached
/// the target and the server promoted, runs the checks, stops the server and removes the scratch
/// directory. See docs/drills.md.
public struct Drill {
    public var config: Configuration
    public var walctl: String
    public var logger: Logger

    public init(config: Configuration, walctl: String = RecoverySettingsWriter.currentExecutable(), logger: Logger = WalctlLog.silent) {
        self.config = config; self.walctl = walctl; self.logger = logger
    }

    /// The longest Unix socket path PostgreSQL accepts (sun_path less the terminator).
    static let maxSocketPath = 107

    /// Runs the drill. A refused plan and failed checks are results (`passed` false); errors that
    /// stop the drill from running (configuration, binaries, the scratch directory, the restore)
    /// are thrown, after the clean-up.
    ///
    /// - Parameter record: store the result in the repository and the catalog.
    public func run(_ options: DrillOptions, record: Bool = true) throws -> DrillResult {
        guard geteuid() != 0 else {
            let again = ["walctl"] + CommandLine.arguments.dropFirst()
            throw WalctlError.refused("walctl drill starts PostgreSQL, which does not run as root: run the drill as the server's user, e.g. `runuser -u postgres -- \(again.map(shellQuote).joined(separator: " "))`")
        }
        let started = Date()
        let cleanup = DrillCleanup(logger: logger)
        cleanup.installSignalHandlers()

        // The scratch directory: new, private, removed at the end unless --keep.
        let base = absolutePath(options.workdir ?? DrillScratch.defaultBase())
        do { try LocalFS.makePrivateDirectory(base, what: "drill directory") } catch { throw WalctlError(error) }
        let stamp = String(DrillSummary.key(startedAt: started).dropFirst(DrillSummary.prefix.count).dropLast(5))
        let scratch = base + "/\(stamp)-\(getpid())"
        let port = options.port ?? 5432
        let socket = scratch + "/.s.PGSQL.\(port)"
        guard socket.utf8.count <= Self.maxSocketPath else {
            throw WalctlError.refused("the drill's socket \(socket) would be longer than the \(Self.maxSocketPath) bytes a Unix socket path may have: give a shorter --workdir")
        }
        do { try LocalFS.makePrivateDirectory(scratch, what: "drill directory") } catch { throw WalctlError(error) }
        let data = scratch + "/data"
        cleanup.set(scratch: scratch, pgwal: data + "/pg_wal", keep: options.keep)
        defer {
            cleanup.stopServer()
            cleanup.removeScratch()
        }
        logger.info("drill: scratch directory \(scratch)\(options.keep ? " (kept)" : "")")

        let user = LocalFS.userName(geteuid())
        var result = DrillResult(key: DrillSummary.key(startedAt: started), startedAt: PGTimestamp(date: started), finishedAt: PGTimestamp(date: started),
                                 passed: false, targetType: options.target.kind, repository: "", host: ProcessInfo.processInfo.hostName,
                                 user: user, scratchDirectory: scratch, kept: options.keep, phases: [], checks: [])
        if case .time(let t) = options.target { result.targetValue = t.iso8601 }
        var mark = started
        func phase(_ name: String, bytes: Int64? = nil, detail: String? = nil, until end: Date = Date()) {
            let s = max(0, end.timeIntervalSince(mark))
            result.phases.append(DrillPhase(name: name, seconds: s, bytes: bytes, bytesPerSecond: bytes.flatMap { s > 0 ? Double($0) / s : nil }, detail: detail))
            mark = end
        }
        func finish() -> DrillResult {
            result.finishedAt = PGTimestamp(date: Date())
            result.rtoSeconds = result.phases.isEmpty ? nil : result.phases.reduce(0) { $0 + $1.seconds }
            if !result.passed, result.failure == nil {
                result.failure = result.checks.first { $0.status == "failed" }.map { "\($0.name): \($0.detail)" }
            }
            if record {
                store(result)
                // Printed (and in --report), not in the stored record: it cannot time its own writing.
                phase("record", detail: "\(result.key) in the repository and the catalog")
                result.rtoSeconds = result.phases.reduce(0) { $0 + $1.seconds }
            }
            return result
        }

        // 1. Plan (and the server binaries, so a missing server fails before the download).
        let recover = Recover(config: config, walctl: walctl, logger: logger)
        let access = try CatalogAccess(config: config, logger: logger)
        result.repository = access.repository.url
        let plan: RecoveryPlan
        do {
            plan = try recover.plan(RecoveryRequest(target: options.target, action: .promote), pgdata: data)
        } catch let r as RecoveryRefused {
            phase("plan")
            result.refusal = r.refusal
            result.failure = "plan refused [\(r.refusal.reason.rawValue)]: \(r.refusal.message)"
            return finish()
        }
        result.plan = plan
        result.targetValue = plan.target.value
        result.backupLabel = plan.backupLabel
        result.pgVersion = plan.backup.pgVersion
        let bins = try PostgresBinaries.find(major: plan.backup.pgVersion, pgBin: config[.pgBin])
        result.serverBinaries = bins.bindir
        let catalog = try access.open()
        switch options.target {
        case .time(let t): result.recoveredTo = t
        default:
            let windows = try catalog.recoverableWindows()
            result.recoveredTo = windows.first { $0.timeline == plan.timeline }?.to ?? windows.compactMap(\.to).max()
        }
        if let to = result.recoveredTo { result.rpoSeconds = max(0, started.timeIntervalSince(to.date)) }
        phase("plan", detail: "backup \(plan.backupLabel), \(plan.segmentCount) segments on timeline \(plan.timeline)")

        // 2. Backup download and restore, recovery settings. Each tablespace goes into the scratch
        // directory too: its recorded location is the source server's (on this host: in use).
        let mapping = try Self.tablespaceMapping(label: plan.backupLabel, repository: access.repository, scratch: scratch)
        // Meanwhile, on another thread and through its own repository handle, the WAL to replay is
        // checked: it must create no tablespace. PostgreSQL's replay would create one at its recorded
        // location, which no mapping changes: on the database host, in the live server's tablespace,
        // whose files the drill's server would then write. Every way out of here waits for it (it
        // writes under the scratch directory).
        let walCheck = BackgroundResult { try WALTablespaceCheck.firstCreation(plan: plan, target: options.target, repository: access.repository) }
        defer { _ = walCheck.wait() }
        let outcome = try recover.execute(plan, pgdata: data, force: false, tablespaceMapping: mapping, checkWAL: false)
        let checked = walCheck.wait()
        phase("restore", bytes: outcome.restore.storedBytes,
              detail: "\(outcome.restore.files) files, \(outcome.restore.bytes) bytes written"
                + (mapping.isEmpty ? "" : ", \(mapping.count) tablespace\(mapping.count == 1 ? "" : "s") under \(scratch)/tablespaces")
                + ((try? checked.get()).map { $0 == nil } == true ? "; the planned WAL read: it creates no tablespace" : ""))
        switch checked {
        case .success(nil):
            break
        case .success(let (segment, creation)?):
            result.failure = "the WAL to replay creates tablespace \(creation.oid) at \(creation.location) (LSN \(creation.lsn), in \(segment), after backup \(plan.backupLabel)): "
                + "PostgreSQL would create it there, outside the drill's scratch directory (on this host, possibly in use by a live server), so the drill did not start it. "
                + "Drill to a time before it (--to), take a new backup (its tablespaces are restored into the scratch directory), or run the drill on a host where \(creation.location) is not in use"
            return finish()
        case .failure(let e as WalctlError):
            // A planned segment that cannot be read back is what the drill exists to find.
            result.failure = "reading the planned WAL: [\(e.code)] \(e)"
            return finish()
        case .failure(let e as WALFormatError):
            result.failure = "reading the planned WAL: [invalid-wal] \(e)"
            return finish()
        case .failure(let e):
            throw e
        }

        // 3. Start the server: private socket, no TCP, no archiving, trust only over that socket.
        let hba = scratch + "/drill_hba.conf"
        try writeFile(hba, Data("# walctl drill: the socket directory is private (0700)\nlocal all all trust\n".utf8), append: false, mode: 0o600)
        if !FileManager.default.fileExists(atPath: data + "/postgresql.conf") {
            // Debian keeps the configuration in /etc: the backup has none.
            try writeFile(data + "/postgresql.conf", Data("# written by walctl drill: the backup had no postgresql.conf\n".utf8), append: false, mode: 0o600)
        }
        let log = data + "/" + RecoveryFiles.log
        var argv = [bins.postgres, "-D", data,
                    "-c", "data_directory=\(data)", "-c", "port=\(port)", "-c", "listen_addresses=",
                    "-c", "unix_socket_directories=\(scratch)", "-c", "unix_socket_permissions=0700",
                    "-c", "hba_file=\(hba)", "-c", "archive_mode=off", "-c", "archive_command=",
                    "-c", "ssl=off", "-c", "logging_collector=off", "-c", "log_destination=stderr",
                    "-c", "external_pid_file=", "-c", "cluster_name=walctl-drill", "-c", "hot_standby=on",
                    "-c", "primary_conninfo=", "-c", "recovery_min_apply_delay=0", "-c", "log_line_prefix=%m [%p] "]
        if bins.major < 15 { argv += ["-c", "stats_temp_directory=pg_stat_tmp"] }
        var env = ProcessInfo.processInfo.environment
        env["LC_MESSAGES"] = "C"
        env["TZ"] = "UTC"
        let pid = try ChildProcess.startDetached(argv, log: log, environment: env)
        cleanup.set(server: pid)
        logger.info("drill: PostgreSQL \(bins.major) (\(bins.bindir)) started on \(socket), pid \(pid)")

        // 4. Wait: recovery reaches the target, promotes, the server accepts connections; or the
        // server exits (archive-get failed, the target was not reached, a start-up error).
        let psql = PSQL(binary: bins.psql, socketDir: scratch, port: port, user: user)
        var status: RecoveryStatus?
        var reached = false
        var serverExited = false
        // Once the log says promoted, the server must answer within this many seconds (a role
        // named after the OS user missing, a full connection table): else the drill fails instead
        // of waiting for ever.
        let connectGrace = 60.0
        var promotedAt: Date?
        var connectError: String?
        while true {
            if !ChildProcess.isRunning(pid) { serverExited = true; break }
            let s = try RecoveryStatus.read(pgdata: data, log: log)
            status = s
            if s.state == "failed" { break }
            if s.state == "promoted" || s.targetReached == true {
                if s.state == "promoted" { promotedAt = promotedAt ?? Date() }
                if let out = try? psql.run(sql: "SELECT pg_is_in_recovery()", database: "postgres") {
                    if out.succeeded && out.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "f" { reached = true; break }
                    if !out.succeeded { connectError = PSQL.firstError(out) }
                }
                if let p = promotedAt, Date().timeIntervalSince(p) > connectGrace { break }
            }
            usleep(50_000)
        }
        let reachedAt = Date()
        if serverExited || !reached { status = try? RecoveryStatus.read(pgdata: data, log: log) }
        result.recovery = status
        let progress = Self.progressTimes(data + "/" + RecoveryFiles.progress)
        if let first = progress.first, let last = progress.last, first >= mark.timeIntervalSince1970, last <= reachedAt.timeIntervalSince1970 {
            phase("start-up", detail: "until the restore command delivered its first file", until: Date(timeIntervalSince1970: first))
            phase("wal-download", bytes: plan.walStoredBytes, detail: "\(progress.segments) segments delivered (replay runs alongside)",
                  until: Date(timeIntervalSince1970: last))
            phase("replay", bytes: plan.walBytes, detail: "after the last delivered file: replay to the target, end of recovery, promotion", until: reachedAt)
        } else {
            phase("start-up", detail: "no file delivered by the restore command", until: reachedAt)
            phase("wal-download", bytes: 0, until: reachedAt)
            phase("replay", until: reachedAt)
        }

        // 5. Checks.
        let reachedCheck: DrillCheck
        if reached {
            let where_ = status?.stoppedAt ?? status?.lastCompletedTransaction.map { "last completed transaction at \($0)" } ?? "end of the archived WAL"
            reachedCheck = DrillCheck(name: "reached-target", status: "passed", detail: "recovery reached the target (\(where_)), promoted and accepts connections", seconds: 0)
        } else {
            var why = status?.errors.last ?? (promotedAt != nil ? "the promoted server did not accept connections as \(user) within \(Int(connectGrace)) s: \(connectError ?? "no answer")" : "the server stopped")
            if let walctlError = Self.lastWalctlError(log) { why = walctlError + "; server: " + why }
            reachedCheck = DrillCheck(name: "reached-target", status: "failed", detail: (serverExited ? "the server exited before reaching the target: " : "") + why, seconds: 0)
            result.failure = "reached-target: " + reachedCheck.detail
        }
        result.checks.append(reachedCheck)
        if reached {
            result.checks += DrillChecks(psql: psql, backup: plan.backup).run(sqlFiles: options.checkSQL)
        }
        phase("checks", detail: "\(result.checks.count) checks")
        result.passed = !result.checks.isEmpty && result.checks.allSatisfy { $0.status != "failed" }

        // 6. Stop and clean up (the defer repeats both; each runs once).
        let how = cleanup.stopServer()
        cleanup.removeScratch()
        phase("shutdown", detail: how.map { "server: \($0)" + (options.keep ? "; scratch directory kept" : "; scratch directory removed") })
        return finish()
    }

    /// Stores `result` as `drill/<timestamp>.json` in the repository and in the catalog; failures
    /// are warnings (the drill's outcome stands).
    func store(_ result: DrillResult) {
        do {
            let bytes = Array(try JSONOutput.encoder().encode(result))
            let repository = try RepositoryFactory.open(config)
            try repository.store.put(key: result.key, bytes: bytes, options: PutOptions(ifAbsent: true))
        } catch {
            logger.warning("warning: could not store the drill record \(result.key) in the repository: \(error)")
        }
        do {
            let access = try CatalogAccess(config: config, logger: logger)
            try access.open().recordDrill(result.summary)
        } catch {
            logger.warning("warning: could not record the drill in the catalog: \(error) (walctl catalog rebuild reads it back from the repository)")
        }
    }

    /// The times (UNIX seconds) of the progress file's lines, and the distinct segments in it.
    static func progressTimes(_ path: String) -> (first: Double?, last: Double?, segments: Int) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return (nil, nil, 0) }
        var first: Double?, last: Double?
        var seen = Set<Substring>()
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 2, let t = Double(f[1]) else { continue }
            first = min(first ?? t, t); last = max(last ?? t, t)
            if case .segment? = WALFileName(String(f[0])) { seen.insert(f[0]) }
        }
        return (first, last, seen.count)
    }

    /// Every tablespace of backup `label` (its recorded location, from the newest member of its
    /// chain: the data directory the restore builds) mapped to `<scratch>/tablespaces/<oid>`.
    static func tablespaceMapping(label: String, repository: Repository, scratch: String) throws -> [String: String] {
        let (_, contents) = try BackupMetadata.read(label: label, repository: repository)
        var mapping: [String: String] = [:]
        for a in contents.archives {
            guard let oid = a.tablespaceOID, let location = a.tablespaceLocation else { continue }
            mapping[location] = scratch + "/tablespaces/\(oid)"
        }
        return mapping
    }

    /// The last `walctl: error [...]` line the restore command wrote into the server log.
    static func lastWalctlError(_ log: String) -> String? {
        guard let text = RecoveryStatus.readTail(log, max: 1 << 20) else { return nil }
        return text.split(separator: "\n").last { $0.contains("walctl: error [") }.map { line in
            let s = String(line)
            return s.range(of: "walctl: ").map { String(s[$0.lowerBound...]) } ?? s
        }
    }
}
