import Catalog
import Foundation
import Logging
import LocalFS
import Planner
import Storage
import WALFormat

/// A refused plan as a command failure: printed as `walctl: error [<reason>]: <message>` plus the
/// missing files and the nearest recoverable times.
public struct RecoveryRefused: Error, CustomStringConvertible {
    public var refusal: PlanRefusal
    public var description: String { refusal.message }
}

/// A user and group that files are given to.
public struct FileOwner: Equatable, Sendable {
    public var uid: uid_t
    public var gid: gid_t
    public init(uid: uid_t, gid: gid_t) { self.uid = uid; self.gid = gid }
}

/// What `walctl recover` did (without `--dry-run`).
public struct RecoverOutcome {
    public var plan: RecoveryPlan
    public var restore: RestoreReport
    /// Files written besides the restored backup.
    public var files: [String]
    /// The command that starts the recovery, exactly.
    public var startCommand: String
    /// What to check before promoting (or, for `latest`, after recovery ends).
    public var checklist: [String]
}

/// `walctl recover`: plan against the catalog, then (unless dry) restore the backup and write the
/// recovery settings. Nothing in the data directory is touched when the plan is refused.
public struct Recover {
    public var config: Configuration
    /// Absolute path of the walctl executable that `restore_command` runs.
    public var walctl: String
    public var logger: Logger
    /// Where the restore step shows its progress.
    public var progress: ProgressOutput = .off

    public init(config: Configuration, walctl: String = RecoverySettingsWriter.currentExecutable(), logger: Logger = WalctlLog.silent) {
        self.config = config; self.walctl = walctl; self.logger = logger
    }

    /// Plans `request`. A ready plan carries every setting to write, `restore_command` first (for
    /// the data directory `pgdata`, which may not exist yet).
    ///
    /// - Throws: `RecoveryRefused` when the plan is refused (also `missing-object`: an object the
    ///   plan needs is listed in the catalog but not in the repository); `WalctlError`/`CatalogError`
    ///   when the repository or catalog cannot be read.
    ///
    /// With `register`, the plan's backup and WAL are registered in the repository (a hold, 24 h)
    /// before the proof, and an expire that held the repository lease at that moment is waited for
    /// (at most 5 minutes) and the plan made again after it: no expire removes what this recovery
    /// uses (docs/retention.md, "The lease").
    public func plan(_ request: RecoveryRequest, pgdata: String, register: Bool = false) throws -> RecoveryPlan {
        let access = try CatalogAccess(config: config, logger: logger)
        let catalog = try access.open()
        var request = request
        if case .xid = request.target {
            request.xidHorizons = Self.xidHorizons(try catalog.backups(), repository: access.repository, size: catalog.segmentSize)
        }
        switch try RecoveryPlanner.plan(request, catalog: catalog) {
        case .refused(var r):
            if let tl = try Self.timelineThatWorks(request, catalog: catalog) {
                r.message += "; on timeline \(tl) this target can be recovered: add --timeline \(tl)"
            }
            throw RecoveryRefused(refusal: r)
        case .ready(var p):
            if register {
                _ = try RepositoryLock.register(access.repository.store, kind: "recover", label: p.backupLabel, timeline: p.backup.timeline,
                                                from: p.backup.startLSN, duration: 24 * 3600)
                do {
                    if try RepositoryLock.waitForExpire(access.repository.store, timeout: 300, logger: logger) {
                        // The expire that ran may have removed what the plan chose: plan again, from its catalog.
                        return try plan(request, pgdata: pgdata, register: false)
                    }
                } catch let e as WalctlError where e.code == "lease-held" {
                    // A lease of a process on another host that may be gone: do not hold a recovery for
                    // up to an hour. The proof below still refuses a plan whose objects are gone.
                    logger.warning("warning: \(e); planning anyway (the repository proof below checks every object the plan reads)")
                }
            }
            // The catalog may be stale or objects deleted since: prove every object the plan reads
            // with listings of its prefixes before anything is touched.
            let missing = try RepositoryProof(repository: access.repository, catalog: catalog).findings(for: p)
            if !missing.isEmpty { throw RecoveryRefused(refusal: RepositoryProof.refusal(missing, plan: p, repository: access.repository.url)) }
            let writer = RecoverySettingsWriter(walctl: walctl, config: config)
            p.settings.insert(RecoverySetting(name: "restore_command", value: writer.restoreCommand(pgdata: absolutePath(pgdata))), at: 0)
            if let end = writer.recoveryEndCommand() {
                p.settings.insert(RecoverySetting(name: "recovery_end_command", value: end), at: 1)
            }
            if writer.needsOwnConfigFile {
                p.warnings.append("credentials came from the environment or the command line: the restore command reads them from \(RecoveryFiles.config) (mode 0600) in the data directory; delete it after recovery")
            }
            return p
        }
    }

    /// For xid targets: each backup's starting checkpoint (the one whose redo is the backup's start),
    /// as archive-push recorded it in the metas of the segments from the backup's start to its stop
    /// (a fast checkpoint is in the first). A backup whose metas cannot be read, or were archived
    /// before checkpoints carried transaction ids, is left out: the planner then only warns.
    static func xidHorizons(_ backups: [BackupRecord], repository: Repository, size: WALSegmentSize) -> [String: XidHorizon] {
        var out: [String: XidHorizon] = [:]
        for b in backups where b.status == .complete {
            let first = b.startLSN.segment(size: size)
            let last = min(b.stopLSN.segment(size: size), first + 63)
            search: for segno in first...max(first, last) {
                guard let name = WALFileName(SegmentID(timeline: b.timeline, segno: segno).fileName(size: size)),
                      let meta = try? repository.meta(for: name), let summary = meta.summary else { break }
                for cp in summary.checkpoints where cp.redo == b.startLSN && !cp.shutdown {
                    if let next = cp.nextXid, let oldest = cp.oldestActiveXid {
                        out[b.label] = XidHorizon(checkpoint: cp.lsn, nextXid: next, oldestActiveXid: oldest)
                    }
                    break search
                }
            }
        }
        return out
    }

    /// For a refusal with `--timeline latest` (the default): the newest older timeline on which the
    /// same target plans, so the refusal can name the flag that works (`--timeline 1` for a time on a
    /// branch that a later promotion left). Nil for an explicit timeline or a target that is the
    /// same everywhere (`--latest`, `--immediate`).
    static func timelineThatWorks(_ request: RecoveryRequest, catalog: Catalog) throws -> TimeLineID? {
        guard request.timeline == .latest else { return nil }
        switch request.target { case .latest, .immediate: return nil; default: break }
        let all = try catalog.timelines().sorted(by: >)
        for tl in all.dropFirst() {
            var other = request
            other.timeline = .number(tl)
            if case .ready = try RecoveryPlanner.plan(other, catalog: catalog) { return tl }
        }
        return nil
    }

    /// Carries out `plan`: restores its backup into `pgdata` (empty, or emptied with `force`), writes
    /// the recovery settings for the PostgreSQL version in `PG_VERSION`, saves the plan and an empty
    /// progress file. Does not start the server.
    ///
    /// - Parameter owner: run as root, the user that gets everything restored and written
    ///   (`Recover.owner(forTarget:arguments:)`); nil otherwise.
    ///
    /// - Parameter checkWAL: read the planned WAL for CREATE TABLESPACE records while restoring, and
    ///   warn (`walctl drill` runs its own check, which refuses); `target` (the request's) ends that
    ///   read where recovery stops (nil: every planned segment).
    public func execute(_ plan: RecoveryPlan, pgdata: String, force: Bool, owner: FileOwner? = nil, delta: Bool = false,
                        tablespaceMapping: [String: String] = [:], checkWAL: Bool = true, target: RecoveryTarget? = nil) throws -> RecoverOutcome {
        let dir = absolutePath(pgdata)
        let repository = try RepositoryFactory.open(config)
        var options = RestoreOptions()
        options.delta = delta
        options.tablespaceMapping = tablespaceMapping
        if let owner { options.owner = (owner.uid, owner.gid) }
        // While the backup is restored, the WAL to replay is read for CREATE TABLESPACE records (a
        // second thread, its own repository handle): replaying one creates the tablespace at its
        // recorded location, whatever --tablespace-mapping did, and on this host that may be a
        // running server's (docs/recovery.md).
        let walCheck: BackgroundResult<(String, TablespaceCreation)?>?
        if !checkWAL {
            walCheck = nil
        } else if let checkRepository = try? RepositoryFactory.open(config) {
            walCheck = BackgroundResult { try WALTablespaceCheck.firstCreation(plan: plan, target: target, repository: checkRepository) }
        } else {
            walCheck = nil
            logger.warning("warning: could not open the repository a second time to read the planned WAL for CREATE TABLESPACE records: not checked")
        }
        defer { _ = walCheck?.wait() }
        let restoreStarted = Date()
        let report = try restoreBackup(label: plan.backupLabel, repository: repository, pgdata: dir, force: force, options: options, logger: logger, progress: progress)
        let versionText: String
        do { versionText = try String(contentsOfFile: dir + "/PG_VERSION", encoding: .utf8) } catch {
            throw WalctlError.refused("the restored backup \(plan.backupLabel) has no readable PG_VERSION in \(dir): it is not a PostgreSQL data directory")
        }
        let major = Self.majorVersion(versionText)
        guard major > 0 else { throw WalctlError.refused("\(dir)/PG_VERSION holds \"\(versionText)\": not a PostgreSQL version") }
        let writer = RecoverySettingsWriter(walctl: walctl, config: config)
        var files = try writer.write(settings: plan.settings, pgdata: dir, major: major,
                                     header: "walctl recover: \(plan.target.type) \(plan.target.value ?? "") from backup \(plan.backupLabel), \(PGTimestamp(date: Date()).iso8601)")
        try writeFile(dir + "/" + RecoveryFiles.plan, try JSONOutput.encoder().encode(plan), append: false, mode: 0o600)
        try writeFile(dir + "/" + RecoveryFiles.progress, Data(), append: false, mode: 0o600)
        let timing = RestoreTiming(restoreStartedAt: restoreStarted.timeIntervalSince1970, restoreFinishedAt: Date().timeIntervalSince1970,
                                   bytes: report.bytes, storedBytes: report.storedBytes, files: report.files)
        try writeFile(dir + "/" + RecoveryFiles.timing, try JSONOutput.encoder().encode(timing), append: false, mode: 0o600)
        files += [dir + "/" + RecoveryFiles.plan, dir + "/" + RecoveryFiles.progress, dir + "/" + RecoveryFiles.timing]
        if let owner {
            // Everything under the data directory and its tablespaces: what the restore wrote, the
            // settings, the plan, the progress file, the target directory itself.
            try chownTree(dir, to: owner)
            chownCatalog(to: owner)
        }
        var warnings: [String] = []
        switch walCheck?.wait() {
        case .success(let (segment, creation)?)?:
            let w = "WARNING: the WAL to replay creates tablespace \(creation.oid) at \(creation.location) (LSN \(creation.lsn), in \(segment)), after backup \(plan.backupLabel): "
                + "PostgreSQL's replay creates it there, not where --tablespace-mapping points, and writes its files there. "
                + "If a server on this host still uses \(creation.location) (the one this backup came from), do not start this recovery here: recover to a time before that LSN, or on another host"
            logger.warning("\(w)")
            warnings.append(w)
        case .failure(let e)?:
            logger.warning("warning: could not read the planned WAL for CREATE TABLESPACE records: \(e)")
        default:
            break
        }
        return RecoverOutcome(plan: plan, restore: report, files: files, startCommand: Self.startCommand(pgdata: dir, pgVersion: plan.backup.pgVersion, major: major),
                              checklist: warnings + Self.checklist(plan, pgdata: dir))
    }

    /// `15` from `15\n`, `9` from `9.6` (the major for settings purposes; 9.x and 10-11 all use recovery.conf).
    static func majorVersion(_ text: String) -> Int {
        Int(text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").first ?? "") ?? 0
    }

    /// `pg_ctl` run as the data directory's owner, logging to `RecoveryFiles.log` in it: through
    /// `runuser -u OWNER --` when walctl runs as root and runuser is installed, else `sudo -u OWNER`.
    static func startCommand(pgdata: String, pgVersion: Int, major: Int) -> String {
        let candidates = ["/usr/lib/postgresql/\(major)/bin/pg_ctl", "/usr/pgsql-\(major)/bin/pg_ctl"]
        let pgctl = candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "pg_ctl"
        var st = stat()
        var prefix = ""
        if stat(pgdata, &st) == 0, st.st_uid != geteuid() {
            prefix = asUser(userName(st.st_uid)) + " "
        }
        return prefix + "\(shellQuote(pgctl)) -D \(shellQuote(pgdata)) -l \(shellQuote(pgdata + "/" + RecoveryFiles.log)) start"
    }

    /// The command prefix that runs a command as `user`.
    static func asUser(_ user: String) -> String {
        if geteuid() == 0, let r = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            return "\((r as NSString).lastPathComponent) -u \(shellQuote(user)) --"
        }
        return "sudo -u \(shellQuote(user))"
    }

    static func userName(_ uid: uid_t) -> String { LocalFS.userName(uid) }

    /// Run as root, `walctl recover` gives everything it restores and writes to the owner of the
    /// target directory when it exists and is not root's, else to the owner of its parent when that
    /// is not root's (the data directory must belong to the server's user, or PostgreSQL refuses to
    /// start). When both are root's it refuses before touching anything, with the commands that fix
    /// it. Not root: nil (files are the running user's).
    ///
    /// - Parameter arguments: the command line, for the command printed in the refusal.
    public static func owner(forTarget pgdata: String, arguments: [String]) throws -> FileOwner? {
        guard geteuid() == 0 else { return nil }
        let dir = absolutePath(pgdata)
        let parent = (dir as NSString).deletingLastPathComponent
        var st = stat()
        if stat(dir, &st) == 0, st.st_uid != 0 { return FileOwner(uid: st.st_uid, gid: st.st_gid) }
        if stat(parent, &st) == 0, st.st_uid != 0 { return FileOwner(uid: st.st_uid, gid: st.st_gid) }
        let user = getpwnam("postgres") != nil ? "postgres" : "<the server's user>"
        var words = arguments
        if !words.isEmpty { words[0] = RecoverySettingsWriter.currentExecutable() }
        let again = words.map(shellQuote).joined(separator: " ")
        throw WalctlError.refused("walctl recover runs as root and \(stat(dir, &st) == 0 ? dir : parent) belongs to root: the restored data directory would be root's and PostgreSQL would refuse to start from it; nothing was changed. "
                                  + "Create the data directory for the server's user, then run recover as that user: `install -d -o \(user) -m 700 \(shellQuote(dir))` then `\(asUser(user)) \(again)`"
                                  + (asUser(user).hasPrefix("sudo") ? "" : " (or `sudo -u \(user) \(again)`)"))
    }

    /// Gives `dir` and everything below it (not following links, except into the tablespaces
    /// `pg_tblspc` links to) to `owner`.
    func chownTree(_ dir: String, to owner: FileOwner) throws {
        func walk(_ path: String) throws {
            var st = stat()
            guard lstat(path, &st) == 0 else { return }
            if st.st_uid != owner.uid || st.st_gid != owner.gid, lchown(path, owner.uid, owner.gid) != 0 {
                throw WalctlError.file(operation: "give to \(Self.userName(owner.uid))", path: path, errno: errno)
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR, let d = opendir(path) else { return }
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafePointer(to: e.pointee.d_name) { p in p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(d)
            for n in names { try walk(path + "/" + n) }
        }
        try walk(dir)
        for link in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/pg_tblspc")) ?? [] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/pg_tblspc/" + link), target.hasPrefix("/") {
                try walk(target)
            }
        }
    }

    /// The catalog this run may have created or opened as root goes to the owner of its directory
    /// (a root-owned catalog breaks every later command run as the server's user).
    func chownCatalog(to owner: FileOwner) {
        guard let path = config[.catalog] else { return }
        var dst = stat()
        guard stat((absolutePath(path) as NSString).deletingLastPathComponent, &dst) == 0, dst.st_uid != 0 else { return }
        for p in [path, path + "-wal", path + "-shm", path + "-journal"] {
            var st = stat()
            if lstat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == 0 { _ = lchown(p, dst.st_uid, dst.st_gid) }
        }
    }

    static func checklist(_ plan: RecoveryPlan, pgdata: String) -> [String] {
        var out = [
            "the restored configuration is the backed-up server's: if that server still runs on this host, change port (and archive_command, so two servers never archive the same timeline) in \(pgdata)/postgresql.auto.conf before starting",
            "follow replay with `walctl recover --status --pgdata \(pgdata)` (segments restored of \(plan.segmentCount), rate, ETA)",
        ]
        switch plan.action {
        case .pause where plan.target.type != "latest":
            out += [
                "when --status says the target was reached (\"recovery stopping before/after ...\" in the log), connect: SELECT pg_is_in_recovery() must be t and SELECT pg_last_xact_replay_timestamp() at or before the target",
                "check the data you recovered for (read-only queries work while paused)",
                "then promote with SELECT pg_wal_replay_resume(); (or pg_ctl promote): the server opens a new timeline and archives from there",
                "if the target was wrong, stop the server and run walctl recover again with another target (--force): nothing was promoted yet",
            ]
        case .promote:
            out.append("the server promotes by itself at the target: check the data right away, it opens a new timeline and archives from there")
        case .shutdown:
            out.append("the server shuts down at the target and recovery.signal stays: a restart replays again; remove recovery.signal (12+) to start normally")
        default:
            out.append("without a target the server replays all archived WAL and promotes")
        }
        return out
    }
}

func absolutePath(_ p: String) -> String {
    var s = p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
    while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
    return s
}
