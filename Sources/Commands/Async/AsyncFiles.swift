import Foundation
import FastPath
import LocalFS

/// Failures of the asynchronous archive-push and the prefetching archive-get, one line each.
public enum AsyncError: Error, CustomStringConvertible {
    /// The background pusher stored nothing for this file and said why.
    case pushFailed(name: String, reason: String)
    /// The foreground waited `archive-push-timeout` seconds without a result for its file.
    case timedOut(name: String, seconds: Int)
    /// The background process could not be started.
    case spawn(String)
    /// The background pusher's last start failed less than its back-off ago.
    case daemonBackoff(reason: String, failures: Int, retryIn: Double, log: String)

    /// The underlying reason (with walctl's `[code]` when there is one).
    public var reason: String {
        switch self {
        case .pushFailed(_, let r), .daemonBackoff(let r, _, _, _): return r
        case .timedOut: return description
        case .spawn(let m): return m
        }
    }

    public var description: String {
        switch self {
        case .pushFailed(let n, let r): return "asynchronous push of \(n) failed: \(r)"
        case .timedOut(let n, let s):
            return "\(n) was not archived within \(s) s (archive-push-timeout); the background pusher keeps trying, see its log in the spool"
        case .spawn(let m): return "cannot start the background process: \(m)"
        case .daemonBackoff(let r, let n, let s, let log):
            return "the background pusher failed to start (\(n) time\(n == 1 ? "" : "s") in a row): \(r); it is started again in \(Int(s.rounded(.up))) s at the earliest (back-off; see \(log))"
        }
    }
}

/// Small file helpers for the spools: every visible file is complete (temporary name, then rename).
enum SpoolFS {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates `dir` and its missing parents (mode 0700), refusing a directory another user could
    /// change: `dir` must be a real directory (not a symlink) owned by the running user and not
    /// writable by group or others, and so must every parent this call created. Every existing
    /// parent must be owned by root or the running user and, when group/other-writable, sticky
    /// (like /tmp), so nobody else can swap a directory on the path (docs/async.md, "Spool location").
    /// `privateFrom` (an ancestor of `dir`, or `dir`) and everything below it are held to the rule
    /// for `dir` itself.
    // security-fs: move into the layer
    static func makeDirectory(_ dir: String, privateFrom: String? = nil) throws(WalctlError) {
        let top = privateFrom ?? dir
        let comps = dir.split(separator: "/").map(String.init)
        guard dir.hasPrefix("/"), !comps.contains(".."), !comps.isEmpty else {
            throw .refused("spool directory \(dir) must be an absolute path without `..`")
        }
        var path = ""
        var createdFrom: Int?
        for (i, c) in comps.enumerated() {
            path += "/" + c
            var st = Glibc.stat()
            if lstat(path, &st) != 0 {
                guard errno == ENOENT else { throw .file(operation: "inspect", path: path, errno: errno) }
                if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .file(operation: "create directory", path: path, errno: errno) }
                if createdFrom == nil { createdFrom = i }
                guard lstat(path, &st) == 0 else { throw .file(operation: "inspect", path: path, errno: errno) }
            }
            if i == comps.count - 1 || createdFrom != nil || path == top || path.hasPrefix(top + "/") {
                try checkPrivate(path, st)
            } else {
                try checkParent(path, st)
            }
        }
    }

    /// The name of user `uid` (or the number).
    static func userName(_ uid: uid_t) -> String {
        if let pw = getpwuid(uid) { return String(cString: pw.pointee.pw_name) }
        return "uid \(uid)"
    }

    /// `dir` as the spool itself: a directory, not a symlink, owned by us, not group/other-writable.
    static func checkPrivate(_ dir: String, _ st: Glibc.stat) throws(WalctlError) {
        let me = geteuid()
        if (st.st_mode & S_IFMT) == S_IFLNK {
            throw .refused("spool directory \(dir) is a symbolic link: walctl follows no link in a spool; remove it (walctl creates the directory) or set spool-path to the real directory")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .refused("spool directory \(dir) exists and is not a directory") }
        if st.st_uid != me {
            throw .refused("spool directory \(dir) is owned by \(userName(st.st_uid)), not by \(userName(me)) who runs walctl: another user could plant files in it; "
                           + "remove it and let walctl create it, or create it with `install -d -o \(userName(me)) -m 700 \(dir)`")
        }
        if st.st_mode & 0o022 != 0 {
            throw .refused("spool directory \(dir) is writable by group or others (mode \(String(st.st_mode & 0o7777, radix: 8))): run `chmod go-w \(dir)`")
        }
    }

    /// An existing directory above the spool: nobody but root and us may rename things in it.
    static func checkParent(_ dir: String, _ st: Glibc.stat) throws(WalctlError) {
        let me = geteuid()
        var st = st
        if (st.st_mode & S_IFMT) == S_IFLNK {
            // A link on the path (/var/run -> /run): its owner could redirect it, and so could
            // everyone who may write where it points; check the target as a directory too.
            guard st.st_uid == 0 || st.st_uid == me else {
                throw .refused("\(dir), on the spool's path, is a symbolic link owned by \(userName(st.st_uid)): set spool-path to a directory only \(userName(me)) and root can change")
            }
            guard stat(dir, &st) == 0 else { throw .file(operation: "inspect", path: dir, errno: errno) }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .refused("\(dir), on the spool's path, is not a directory") }
        if st.st_uid != 0 && st.st_uid != me {
            throw .refused("\(dir), on the spool's path, is owned by \(userName(st.st_uid)), who could replace the spool: set spool-path to a directory only \(userName(me)) and root can change (e.g. `install -d -o \(userName(me)) -m 700 DIR`)")
        }
        if st.st_mode & 0o022 != 0 && st.st_mode & S_ISVTX == 0 {
            throw .refused("\(dir), on the spool's path, is writable by group or others without the sticky bit (mode \(String(st.st_mode & 0o7777, radix: 8))): run `chmod go-w \(dir)` or set spool-path elsewhere")
        }
    }

    /// Reads a small regular file whole; nil when it does not exist, is a symlink (O_NOFOLLOW) or is
    /// not a regular file (a FIFO planted in a spool must not block the reader: LocalFS).
    static func read(_ path: String) -> [UInt8]? { FastFS.read(path, limit: Int.max) }

    /// Writes `bytes` to `path` through an unpredictable temporary name and a rename (LocalFS);
    /// `durable` adds fdatasync of the file and fsync of its directory.
    static func write(_ path: String, _ bytes: [UInt8], durable: Bool = false) throws(WalctlError) {
        do { try LocalFS.writeFile(path, bytes, durability: durable ? .full : .none) } catch { throw WalctlError(error) }
    }

    /// File names in `dir` (no `.`/`..`); empty when the directory does not exist.
    static func list(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// Size and modification time (nanoseconds) of a file, or nil.
    static func fileInfo(_ path: String) -> (size: Int64, mtimeNs: Int64)? {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (Int64(st.st_size), Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
    }

    /// An absolute version of `path` (relative paths are taken from the current directory, as
    /// PostgreSQL's `%p` is relative to the data directory it runs the command in).
    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return FileManager.default.currentDirectoryPath + "/" + path
    }

    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        return (try? Array(enc.encode(value))) ?? []
    }

    static func decode<T: Decodable>(_ type: T.Type, _ path: String) -> T? {
        guard let b = read(path) else { return nil }
        return try? JSONDecoder().decode(type, from: Data(b))
    }
}

/// An exclusive `flock(2)` on a file: the guarantee that one background process runs per spool.
/// The lock dies with the process (crash included), so a stale lock file never blocks anything.
public final class SpoolLock {
    public let path: String
    let fd: Int32

    private init(path: String, fd: Int32) { self.path = path; self.fd = fd }

    /// Takes the lock without waiting; nil when another process (or another open file) holds it.
    public static func tryAcquire(_ path: String) throws(WalctlError) -> SpoolLock? {
        let fd: Int32
        do { fd = try LocalFS.openLock(path) } catch { throw WalctlError(error) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        return SpoolLock(path: path, fd: fd)
    }

    /// True when some process holds the lock right now (a test that does not keep it).
    public static func isHeld(_ path: String) -> Bool { FastFS.isLockHeld(path) }

    /// Records the holder's pid in the lock file (for `walctl info` and operators).
    public func writePID() {
        let s = Array((String(getpid()) + "\n").utf8)
        _ = ftruncate(fd, 0)
        _ = s.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// False once the lock file was removed or replaced (the spool or the data directory was
    /// deleted under a running daemon): the daemon must then stop, its results would go nowhere.
    public var isStillAtPath: Bool {
        var a = Glibc.stat(), b = Glibc.stat()
        guard fstat(fd, &a) == 0, lstat(path, &b) == 0 else { return false }
        return a.st_ino == b.st_ino && a.st_dev == b.st_dev
    }

    public func release() { flock(fd, LOCK_UN); close(fd) }
}

/// Starts walctl itself as a detached background process (own session, stdin from /dev/null,
/// output appended to a log file in the spool), with the resolved configuration passed as
/// `WALCTL_*` environment variables so it sees exactly what the foreground saw.
enum DaemonLauncher {
    /// The running executable (`/proc/self/exe`), or nil.
    static func selfExecutable() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        buf[n] = 0
        return String(cString: buf)
    }

    static func environment(for config: Configuration) -> [String] {
        var env = ProcessInfo.processInfo.environment
        for (name, value) in config.values {
            if let d = Settings.definition(name) { env[d.environmentName] = value }
        }
        return env.map { "\($0.key)=\($0.value)" }
    }

    /// Spawns `walctl <arguments>` detached; returns its pid. The foreground never waits for it.
    @discardableResult
    static func spawn(arguments: [String], config: Configuration, logPath: String) throws(AsyncError) -> pid_t {
        guard let exe = selfExecutable() else { throw .spawn("cannot find the walctl executable (/proc/self/exe)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // The log is opened here (LocalFS: O_APPEND|O_NOFOLLOW, a regular file only) and handed down.
        let logFD: Int32
        do { logFD = try LocalFS.openAppend(logPath) } catch { throw .spawn(error.description) }
        defer { close(logFD) }
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // A session of its own: PostgreSQL signalling the archiver's process group (shutdown) does
        // not kill a push in flight; the daemon finishes and exits when idle.
        posix_spawnattr_setflags(&attr, Int16(0x80 /* POSIX_SPAWN_SETSID */))
        let argv = [exe] + arguments
        let env = environment(for: config)
        var cargv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { cargv.forEach { free($0) }; cenv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, &cargv, &cenv)
        if rc != 0 { throw .spawn("posix_spawn \(exe): \(String(cString: strerror(rc)))") }
        return pid
    }
}

/// Reaps exited children without blocking (the foreground may spawn a daemon and outlive it).
func reapChildren() {
    var status: Int32 = 0
    while waitpid(-1, &status, WNOHANG) > 0 {}
}
