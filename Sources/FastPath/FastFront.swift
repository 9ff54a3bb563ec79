#if canImport(Glibc)
import Glibc
#endif
import LocalFS
import Codec

/// The fast front's decisions (docs/async.md, "The fast front"). Each path either completes the call
/// exactly as the full binary would, or returns `.fallBack` having changed nothing the full binary
/// would not change in the same way; the caller then `execv`s the full binary with the same argv.
public enum FastFront {
    /// What the front does with one invocation.
    public enum Outcome: Equatable {
        /// Done: exit with this code (0).
        case exit(Int32)
        /// Run the full binary with the same arguments.
        case fallBack
    }

    /// The command line the front understands: the subcommand, `--config`, `--set` (repeatable),
    /// `--progress-file` (archive-get), and the positionals. nil for anything else.
    public struct Invocation: Equatable {
        public var command: String
        public var config: String?
        public var sets: [String] = []
        public var progressFile: String?
        public var positionals: [String] = []

        public static func parse(_ args: [String]) -> Invocation? {
            guard args.count >= 2, args[1] == "archive-push" || args[1] == "archive-get" else { return nil }
            var inv = Invocation(command: args[1])
            var i = 2
            while i < args.count {
                let a = args[i]
                if a.hasPrefix("-") {
                    guard i + 1 < args.count, !args[i + 1].hasPrefix("-") else { return nil }
                    let v = args[i + 1]
                    switch a {
                    case "--config": guard inv.config == nil else { return nil }; inv.config = v
                    case "--set": inv.sets.append(v)
                    case "--progress-file" where inv.command == "archive-get":
                        guard inv.progressFile == nil else { return nil }; inv.progressFile = v
                    default: return nil
                    }
                    i += 2
                } else {
                    inv.positionals.append(a)
                    i += 1
                }
            }
            guard inv.positionals.count == (inv.command == "archive-get" ? 2 : 1) else { return nil }
            return inv
        }
    }

    /// The process's view of the world, injectable for tests.
    public struct Environment {
        public var variable: (String) -> String?
        public var cwd: String?
        public var bootID: String?

        public init(variable: @escaping (String) -> String?, cwd: String?, bootID: String?) {
            self.variable = variable; self.cwd = cwd; self.bootID = bootID
        }

        /// The real process environment.
        public static func current() -> Environment {
            Environment(variable: { name in getenv(name).map { String(cString: $0) } },
                        cwd: FastFS.currentDirectory(), bootID: FastFS.bootID())
        }
    }

    /// Decides and, on the fast paths, acts.
    public static func run(_ args: [String], env: Environment) -> Outcome {
        guard let inv = Invocation.parse(args),
              let config = FastConfig.load(configFlag: inv.config, sets: inv.sets, environment: env.variable) else { return .fallBack }
        switch inv.command {
        case "archive-push": return pushAlreadyOK(path: inv.positionals[0], config: config, env: env)
        case "archive-get":
            // Disjoint: the spool only with restore-prefetch > 0, the repository itself only without.
            if case .exit(let code) = servePrefetched(fileName: inv.positionals[0], target: inv.positionals[1], progressFile: inv.progressFile, config: config, env: env) {
                return .exit(code)
            }
            return getDirect(fileName: inv.positionals[0], target: inv.positionals[1], progressFile: inv.progressFile, config: config, env: env)
        default: return .fallBack
        }
    }

    /// The keys of `ArchivedFileMeta` as the encoder writes them; `summary` may be absent.
    static let metaKeys: Set<String> = ["name", "size", "storedSize", "codec", "crc32c", "archivedAt", "summary"]

    /// True when `meta` is shaped like an encoded `ArchivedFileMeta` for `name`.
    static func plausibleMeta(_ meta: JSONValue, name: String) -> Bool {
        guard case .object = meta, Set(meta.keys).isSubset(of: metaKeys),
              meta["name"]?.stringValue == name, meta["size"]?.int64Value != nil, meta["storedSize"]?.int64Value != nil,
              meta["codec"]?.stringValue != nil, meta["crc32c"]?.stringValue?.utf8.count == 8, meta["archivedAt"] != nil else { return false }
        if let s = meta["summary"] {
            switch s { case .object, .null: break; default: return false }
        }
        return true
    }

    // MARK: archive-push

    /// `archive-push %p` with `archive-async = true` and the pusher's `.ok` result for `%p` already
    /// in the spool, about this very file (size, mtime) and this repository: consume it, exit 0.
    /// `AsyncArchive.pushAsync`'s first look, without the safety valve (on: fall back) and without
    /// the "already archived" message (fall back).
    public static func pushAlreadyOK(path: String, config: FastConfig, env: Environment) -> Outcome {
        guard config.bool("archive-async") == true,
              config.integer("archive-push-queue-max") != .undecided, config.integer("archive-push-max-age") != .undecided,
              (config.integer("archive-push-queue-max") == .unset || config.integer("archive-push-queue-max") == .value(0)),
              (config.integer("archive-push-max-age") == .unset || config.integer("archive-push-max-age") == .value(0)),
              config.integer("archive-push-timeout") != .undecided,
              let (walDir, name) = FastPaths.split(path, cwd: env.cwd), FastWALName.isValid(name) else { return .fallBack }
        // Not a regular file (a FIFO, a device): the full binary refuses it at once; never wait for it.
        guard isRegularFile(walDir + "/" + name) else { return .fallBack }
        let root: String
        if let p = config["spool-path"] { root = p } else {
            // The full binary's default for a data directory's pg_wal (ArchiveSpool.rootPath);
            // anything else is left to it.
            guard walDir.hasSuffix("/pg_wal"), let parent = FastPaths.parent(walDir) else { return .fallBack }
            root = parent + "/walctl_spool"
        }
        let dir = root + "/archive"
        // A result is trusted only from a spool nobody else can write (the full binary refuses
        // any other, with the reason): ours, not group/other-writable, no symlink.
        guard FastFS.isPrivateDirectory(root), FastFS.isPrivateDirectory(dir), FastFS.isPrivateDirectory(dir + "/skipped"),
              FastFS.fileInfo(walDir + "/archive_status/" + name + ".ready") != nil else { return .fallBack }
        // The pusher runs but has not stored %p yet: wait here, woken by the spool directory,
        // rather than start the full binary to poll (on two cores, ~9 ms of CPU per call taken
        // from the compression the archiver is waiting for).
        let ok = dir + "/" + name + ".ok"
        var limit = fastWaitLimit
        if case .value(let t) = config.integer("archive-push-timeout") { limit = min(limit, Double(max(0, t))) }
        guard waitInDirectory(dir, seconds: limit, while: { !FastFS.exists(ok) },
                              unless: { FastFS.exists(dir + "/" + name + ".error") || !FastFS.isLockHeld(dir + "/daemon.lock") })
        else { return .fallBack }
        guard let bytes = FastFS.read(ok), let rec = JSONValue.parse(bytes),
              Set(rec.keys) == ["repository", "sourceSize", "sourceMTimeNs", "meta", "alreadyArchived"],
              let repo = rec["repository"]?.stringValue, Array(repo.utf8) == Array((config["repository"] ?? "").utf8),
              let size = rec["sourceSize"]?.int64Value, let mtime = rec["sourceMTimeNs"]?.int64Value,
              rec["alreadyArchived"]?.boolValue == false, let meta = rec["meta"], plausibleMeta(meta, name: name),
              !recordsDamage(meta),
              let st = FastFS.fileInfo(walDir + "/" + name), st.size == size, st.mtimeNs == mtime else { return .fallBack }
        unlink(dir + "/" + name + ".ok")
        unlink(dir + "/" + name + ".error")
        return .exit(0)
    }

    /// True when the pusher found the segment damaged (`summary.damagedAt`): the full binary then
    /// consumes the result and writes `WARNING: DAMAGED WAL` into PostgreSQL's log.
    static func recordsDamage(_ meta: JSONValue) -> Bool {
        guard let d = meta["summary"]?["damagedAt"] else { return false }
        return d != .null
    }

    /// `stat` (following symlinks, as the full binary's check) says a regular file.
    static func isRegularFile(_ path: String) -> Bool {
        var st = Glibc.stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// `lstat` says a regular file (a symlink is not one, as `FastFS.read` does not follow it).
    static func isRegularFileNoFollow(_ path: String) -> Bool {
        var st = Glibc.stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Seconds the front waits for a running background process before handing over to the full
    /// binary (which waits up to its own timeout, with its error handling and daemon restarts).
    static let fastWaitLimit = 10.0

    /// Waits, woken by changes in `dir`, as long as `pending` holds. False (hand over to the full
    /// binary) when `giveUp` holds first or `seconds` pass; true once nothing is pending.
    static func waitInDirectory(_ dir: String, seconds: Double, while pending: () -> Bool, unless giveUp: () -> Bool) -> Bool {
        let deadline = monotonicSeconds() + seconds
        var watch: DirectoryWatch?
        while pending() {
            if giveUp() || monotonicSeconds() >= deadline { return false }
            // The watch exists before the next look, so a change in between still wakes the wait.
            if let watch { watch.wait(milliseconds: 50) } else { watch = DirectoryWatch(dir) }
        }
        return true
    }

    // MARK: archive-get

    /// `archive-get %f %p` with `restore-prefetch` > 0, a running prefetcher, and `%f` complete in
    /// the spool with a record from this boot, for this repository: write `want`, rename the
    /// segment into `%p`, exit 0. `PrefetchGet.getIfEnabled` + `serve`, read-only until the
    /// decision is made. On a plaintext file repository the record's meta must also equal the
    /// repository's (one local read). Elsewhere the record is trusted as it is: a meta is written
    /// once, if absent, and never replaced (only removed, by expire or repair, which does not make
    /// the archived bytes wrong), and the prefetcher wrote the record only after the object's
    /// CRC-32C matched that meta. On S3 re-reading it would cost a process of the full binary and a
    /// TLS connection per segment (docs/benchmarks.md, "Async drain and recovery through the
    /// prefetcher"). An encrypted repository's meta cannot be read here at all (walctl-fast loads no
    /// libcrypto and reads no key: that start-up is what per-process encryption costs); the
    /// prefetcher authenticated it and the object under the data key. On an encrypted file
    /// repository the meta object must still exist (one `lstat`), so a segment removed meanwhile
    /// goes to walctl as on a plaintext one.
    public static func servePrefetched(fileName: String, target: String, progressFile: String?, config: FastConfig, env: Environment) -> Outcome {
        let encrypted = SettingType.lower(config["repository-cipher"] ?? "none") != "none"
        guard case .value(let depth) = config.integer("restore-prefetch"), depth > 0,
              config.integer("archive-get-retry-time") != .undecided,
              config.bool("archive-get-fsync") == false,   // on: walctl fsyncs what it serves
              FastWALName.isSegment(fileName), let bootID = env.bootID,
              let repoSetting = config["repository"], fileRepositoryRoot(repoSetting) != nil || repoSetting.hasPrefix("s3://"),
              let (targetDir, targetBase) = FastPaths.split(target, cwd: env.cwd) else { return .fallBack }
        let root = fileRepositoryRoot(repoSetting)
        let spool = targetDir + "/walctl_prefetch"
        let entry = spool + "/" + fileName
        // Served bytes are trusted from a spool nobody else can write (ours, not group/other-writable,
        // no symlink), as the pusher's results are.
        guard FastFS.isPrivateDirectory(spool), FastFS.isLockHeld(spool + "/daemon.lock") else { return .fallBack }
        // From the first look to the rename into %p, the spool directory cannot be removed under
        // this call (a stopping prefetcher or --cleanup takes the lock exclusively to remove it);
        // what may still vanish is an entry (the window moved, the spool was cleared), and then
        // the rename fails and walctl fetches directly. Being removed now: walctl.
        guard let dirLock = SpoolDirectoryLock.shared(spool, create: false, seconds: 0.5) else { return .fallBack }
        defer { dirLock.release() }
        // The prefetcher is fetching %f right now: wait for its record (written last) here.
        guard waitInDirectory(spool, seconds: fastWaitLimit, while: { !FastFS.exists(entry + ".rec") && FastFS.exists(entry + ".busy") },
                              unless: { !FastFS.isLockHeld(spool + "/daemon.lock") })
        else { return .fallBack }
        guard FastFS.exists(entry),
              let recBytes = FastFS.read(entry + ".rec"), let rec = JSONValue.parse(recBytes),
              Set(rec.keys) == ["repository", "meta", "bootID"],
              let recRepo = rec["repository"]?.stringValue, Array(recRepo.utf8) == Array(repoSetting.utf8),
              let recBoot = rec["bootID"]?.stringValue, Array(recBoot.utf8) == Array(bootID.utf8),
              let recMeta = rec["meta"], plausibleMeta(recMeta, name: fileName) else { return .fallBack }
        if let root {
            let metaPath = segmentMetaPath(root: root, segment: fileName)
            if encrypted {
                guard isRegularFileNoFollow(metaPath) else { return .fallBack }
            } else {
                guard let metaBytes = FastFS.read(metaPath),
                      let meta = JSONValue.parse(metaBytes), meta == recMeta else { return .fallBack }
            }
        }
        // As PrefetchSpool.setWant: recovery is at fileName (the prefetcher moves its window).
        unlink(spool + "/stop")
        guard FastFS.write(spool + "/want", Array(fileName.utf8)) else { return .fallBack }
        unlink(entry + ".rec")
        if rename(entry, targetDir + "/" + targetBase) != 0 {
            unlink(entry)
            return .fallBack   // the full binary finds no entry and fetches directly
        }
        if let progressFile { appendProgress(progressFile, name: fileName) }
        return .exit(0)
    }

    /// `archive-get %f %p` of a segment from a plaintext file repository, without prefetching: the
    /// full binary's restore of a hit (`ArchiveGet.attemptGet`: read the meta, decode the object,
    /// check its CRC-32C and size against the meta, rename into `%p`; the same temporary file and
    /// mode, no fsync) in a process that starts in a fraction of the full binary's time, through
    /// the same decoding code (`SegmentRestore.zstd`). Only the plain success is done here: a meta
    /// that is absent or not plain JSON of this segment, another codec, an object that is missing,
    /// a link, short, long or of another CRC-32C, any read or write error, leaves `%p` untouched
    /// (the temporary file removed) and goes to the full binary, which decides exit 1 or 255 with
    /// its evidence, retries and messages. Settings that change what a hit does go there too:
    /// `restore-prefetch` > 0 (the prefetcher must be started and fed), `archive-get-fsync = true`,
    /// `repository-cipher` other than none, `log-level = debug` (its lines on a hit).
    public static func getDirect(fileName: String, target: String, progressFile: String?, config: FastConfig, env: Environment) -> Outcome {
        let prefetch = config.integer("restore-prefetch")
        let level = SettingType.lower(config["log-level"] ?? "warning")
        guard prefetch == .unset || prefetch == .value(0),
              config.bool("archive-get-fsync") == false,
              SettingType.lower(config["repository-cipher"] ?? "none") == "none",
              ["error", "warning", "info"].contains(level),
              FastWALName.isSegment(fileName), let (targetDir, targetBase) = FastPaths.split(target, cwd: env.cwd),
              let repoSetting = config["repository"], let root = fileRepositoryRoot(repoSetting) else { return .fallBack }
        guard let metaBytes = FastFS.read(segmentMetaPath(root: root, segment: fileName)), let meta = JSONValue.parse(metaBytes),
              plausibleMeta(meta, name: fileName), meta["codec"]?.stringValue == "zstd",
              let size = meta["size"]?.int64Value, size >= 0,
              let crcText = meta["crc32c"]?.stringValue, let expected = UInt32(crcText, radix: 16) else { return .fallBack }
        let objectPath = segmentObjectPath(root: root, segment: fileName, crc32c: expected)
        // Absent (a meta without its object: a broken repository), a link, not a regular file
        // (openRead refuses the last two): walctl.
        guard let opened = try? LocalFS.openRead(objectPath) else { return .fallBack }
        defer { close(opened.fd) }
        guard let decoder = (try? CodecKind.zstd.makeBufferDecoder()) ?? nil, let out = try? AtomicWriter(path: targetDir + "/" + targetBase, durability: .none, buffered: false) else {
            return .fallBack
        }
        do {
            guard let r = try SegmentRestore.zstd(expectedSize: size, into: out, decoder: decoder, read: { sink in
                try SegmentRestore.readAll(opened.fd, path: objectPath, into: sink)
            }), r.crc == expected, Int64(r.size) == size else {
                out.abort()
                return .fallBack
            }
            try out.commit()
        } catch {
            out.abort()
            return .fallBack
        }
        if let progressFile { appendProgress(progressFile, name: fileName) }
        return .exit(0)
    }

    /// `RepositoryLayout.metaKey` of a segment in the FileStore at `root` (Storage's layout, which
    /// this Foundation-free module cannot import; FastFrontTests pins the two together).
    static func segmentMetaPath(root: String, segment: String) -> String {
        root + "/wal/" + String(segment.prefix(16)) + "/" + segment + ".meta"
    }

    /// `RepositoryLayout.objectKey` of a zstd segment: the name, its CRC-32C as eight lowercase
    /// hexadecimal digits (`ArchivedFileMeta.hex`), `.zst`.
    static func segmentObjectPath(root: String, segment: String, crc32c: UInt32) -> String {
        let hex = String(crc32c, radix: 16)
        return root + "/wal/" + String(segment.prefix(16)) + "/" + segment + "." + String(repeating: "0", count: 8 - hex.utf8.count) + hex + ".zst"
    }

    /// The FileStore root for a `repository` setting (`file:///abs` or `/abs`, trailing slashes
    /// removed as `FileStore.init`), nil for anything else (S3: fall back).
    public static func fileRepositoryRoot(_ setting: String) -> String? {
        var path: String
        if setting.hasPrefix("file://") { path = String(setting.dropFirst(7)) } else { path = setting }
        guard path.hasPrefix("/") else { return nil }
        while path.utf8.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// `appendProgress` of the full CLI: one `NAME SECONDS.NANOSECONDS` line, one O_APPEND write;
    /// failing to write it never fails the restore.
    public static func appendProgress(_ file: String, name: String) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let nanos = String(ts.tv_nsec)
        let line = name + " " + String(ts.tv_sec) + "." + String(repeating: "0", count: 9 - nanos.utf8.count) + nanos + "\n"
        try? LocalFS.append(file, Array(line.utf8), durability: .none)
    }
}
