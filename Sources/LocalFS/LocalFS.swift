#if canImport(Glibc)
import Glibc
#endif

/// The one local-filesystem layer: every file walctl and walctl-fast write goes through here
/// (docs/architecture.md, "What may write a file, and how"). Glibc only, so the fully static
/// `walctl-fast` uses the same code as `walctl`.
///
/// The rules it enforces, once:
/// - nothing is created under a guessable name: temporary files are `.<name>.tmp.<pid>.<16 hex digits
///   from getrandom(2)>` in the target's directory, opened `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, mode 0600
///   unless asked otherwise, so another user's symlink or file at that name is never followed or reused;
/// - nothing of walctl's own is opened through a symbolic link (`O_NOFOLLOW`), and a descriptor that
///   must be a regular file is checked with `fstat` after the open (no stat-then-open race);
/// - durability is one enum (`Durability`): which syncs a write makes, and why, is stated here.

/// A failure of the layer. Callers map `.io` to their `file-io` error and `.refused` to their
/// "operator must fix" error; the messages are kept whole.
public enum LocalFSError: Error, CustomStringConvertible, Equatable {
    /// A system call failed: what was done, on which path, and errno.
    case io(operation: String, path: String, errno: Int32)
    /// A precondition the operator must fix (a directory owned by someone else, a missing one); the
    /// message names the path and the command that fixes it.
    case refused(String)

    public var description: String {
        switch self {
        case .io(let op, let p, let e): return "cannot \(op) \(p): \(String(cString: strerror(e)))"
        case .refused(let m): return m
        }
    }

    /// errno of an `.io` failure (0 for `.refused`).
    public var errnoValue: Int32 {
        if case .io(_, _, let e) = self { return e }
        return 0
    }
}

/// How hard a write waits for the disk.
public enum Durability: Sendable {
    /// No sync: files whose loss in an OS crash is harmless or detected by their readers (spool
    /// records and queues, which are re-created from pg_wal / the repository).
    case none
    /// `fdatasync` of the file before the rename: its bytes are on disk once the new name can be seen,
    /// but the rename itself may be lost in an OS crash. For archive-get's `%p` (PostgreSQL makes the
    /// files it keeps durable itself: `durable_rename` in KeepFileRestoredFromArchive; the others it
    /// re-fetches after a crash) and for files synced by a later directory or filesystem sync.
    case data
    /// `fdatasync` of the file, the rename, then `fsync` of the directory: the new name and its
    /// contents survive an OS crash. For the repository and for what recover writes.
    case full
}

// MARK: - Small primitives

/// syncfs(2): Glibc's module map does not export it (it needs _GNU_SOURCE).
@_silgen_name("syncfs") private func c_syncfs(_ fd: Int32) -> Int32
@_silgen_name("getrandom") private func c_getrandom(_ buf: UnsafeMutableRawPointer?, _ len: Int, _ flags: UInt32) -> Int

public enum LocalFS {
    /// 16 lowercase hex digits from getrandom(2): a name no other user can predict.
    public static func randomName() -> String {
        var r: UInt64 = 0
        var got = 0
        withUnsafeMutableBytes(of: &r) { p in
            while got < 8 {
                let n = c_getrandom(p.baseAddress! + got, 8 - got, 0)
                if n < 0 { if errno == EINTR { continue }; break }
                got += n
            }
        }
        // getrandom cannot fail on Linux >= 3.17 once the pool is initialised; should it ever, the
        // system generator (also getrandom-backed) still gives an unpredictable value.
        if got < 8 { r = UInt64.random(in: 0...UInt64.max) }
        let s = String(r, radix: 16)
        return String(repeating: "0", count: 16 - s.utf8.count) + s
    }

    /// The directory part of `path` ("." for a bare name), as NSString's last-component removal for
    /// the paths walctl builds.
    public static func directory(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == path.utf8.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// Removes the temporary files `AtomicWriter` left for `path` by writers that are gone (a
    /// `kill -9` in the middle of an archive-get leaves a 16 MiB `.RECOVERYXLOG.tmp.<pid>.<hex>` in
    /// pg_wal that nothing else ever removes): entries of `path`'s directory named exactly
    /// `.<name>.tmp.<pid>.<16 hexadecimal digits>` (the PID as getpid() prints it), regular files
    /// (`lstat`) with one link, of this user, whose
    /// `<pid>` is not this process and names no process (`kill(pid, 0)`: ESRCH), and that nothing
    /// modified for `quietSeconds` (a writer in another PID namespace would still be writing).
    /// Best effort: what cannot be read or removed is left. Returns the paths removed.
    @discardableResult
    public static func removeAbandonedTemporaries(of path: String, quietSeconds: Int = 10) -> [String] {
        let dir = directory(of: path)
        let temporary = temporaryName(of: path)
        let prefix = Array(temporary.name.utf8)
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var removed: [String] = []
        while let entry = readdir(d) {
            let name: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            guard name.count > prefix.count, name.starts(with: prefix) else { continue }
            let rest = name[prefix.count...]
            guard let dot = rest.firstIndex(of: UInt8(ascii: ".")) else { continue }
            let pidDigits = rest[..<dot], hex = rest[rest.index(after: dot)...]
            guard (1...10).contains(pidDigits.count), pidDigits.first != 0x30, pidDigits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  hex.count == 16, hex.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
                  let pid = Int32(String(decoding: pidDigits, as: UTF8.self)), pid > 0, pid != getpid() else { continue }
            let full = temporary.directory + String(decoding: name, as: UTF8.self)
            var st = stat()
            // One link: AtomicWriter's files never have another name; a hard link someone made
            // under such a name keeps it.
            guard lstat(full, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1, st.st_uid == geteuid(),
                  Int(now.tv_sec) - Int(st.st_mtim.tv_sec) >= quietSeconds else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            if unlink(full) == 0 { removed.append(full) }
        }
        return removed
    }

    /// The temporary files `AtomicWriter` makes for `path`: the directory part to put before them
    /// (empty for a bare name, as `path` spells it), and their names' start, `.<name>.tmp.`; the
    /// writer's PID, a dot and 16 random hexadecimal digits follow.
    static func temporaryName(of path: String) -> (directory: String, name: String) {
        let dir = directory(of: path)
        return (dir == "." && !path.hasPrefix("./") ? "" : dir + "/", "." + baseName(of: path) + ".tmp.")
    }

    /// The last component of `path`.
    public static func baseName(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }

    /// Writes all of `bytes` to `fd`, retrying on EINTR and short writes.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(LocalFSError) {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", path: path, errno: errno)
            }
            p += n
            left -= n
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(LocalFSError) {
        let r: LocalFSError? = bytes.withUnsafeBytes { b in
            do throws(LocalFSError) { try writeAll(fd, b, path: path); return nil } catch { return error }
        }
        if let r { throw r }
    }

    /// `fdatasync(2)`: the file's bytes and the metadata needed to read them back (size, extents),
    /// not its timestamps, which nothing of walctl's reads.
    public static func syncData(_ fd: Int32, path: String) throws(LocalFSError) {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw .io(operation: "fdatasync", path: path, errno: errno)
        }
    }

    /// fdatasync of an existing file of walctl's (never through a symbolic link, a regular file only):
    /// a spool file about to be served as a durable one.
    public static func syncFile(_ path: String) throws(LocalFSError) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        _ = try status(fd, path: path)
        try syncData(fd, path: path)
    }

    /// `fsync(2)` on a directory, so a new entry or a rename in it survives an OS crash.
    public static func syncDirectory(_ dir: String) throws(LocalFSError) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .io(operation: "open directory", path: dir, errno: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL { throw .io(operation: "fsync directory", path: dir, errno: errno) }
    }

    /// Flushes the whole filesystem holding `dir` (`syncfs(2)`), then fsyncs `dir` itself: one sync
    /// for the thousands of files restore-backup writes, instead of one per file.
    public static func syncFilesystem(of dir: String) throws(LocalFSError) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .io(operation: "open", path: dir, errno: errno) }
        defer { close(fd) }
        if c_syncfs(fd) != 0 { throw .io(operation: "syncfs", path: dir, errno: errno) }
        if fsync(fd) != 0 { throw .io(operation: "fsync", path: dir, errno: errno) }
    }

    /// `fstat` of an open descriptor; with `regular`, refuses anything but a regular file (a FIFO, a
    /// device or a directory where walctl expects its own file).
    public static func status(_ fd: Int32, path: String, regular: Bool = true) throws(LocalFSError) -> stat {
        var st = stat()
        if fstat(fd, &st) != 0 { throw .io(operation: "stat", path: path, errno: errno) }
        if regular && (st.st_mode & S_IFMT) != S_IFREG {
            throw .refused("\(path) is not a regular file: refusing to use it (remove it, walctl creates its own files)")
        }
        return st
    }

    // MARK: - Opening

    /// Opens an existing file for reading, never through a symbolic link (unless `followSymlinks`:
    /// for files an operator may link, like a configuration file), and checks it is a regular file.
    /// nil when it does not exist.
    public static func openRead(_ path: String, followSymlinks: Bool = false) throws(LocalFSError) -> (fd: Int32, status: stat)? {
        // O_NONBLOCK: opening a FIFO planted under the name must not wait for a writer (the fstat
        // below then refuses it); reads of regular files ignore the flag.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW))
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            if errno == ELOOP { throw .refused("\(path) is a symbolic link: refusing to follow it (walctl's own files are never links)") }
            throw .io(operation: "open", path: path, errno: errno)
        }
        do throws(LocalFSError) {
            return (fd, try status(fd, path: path))
        } catch { close(fd); throw error }
    }

    /// Reads a file whole (`O_NOFOLLOW` unless `followSymlinks`); nil when it does not exist. A file
    /// larger than `limit` is an error.
    public static func readFile(_ path: String, limit: Int = Int.max, followSymlinks: Bool = false) throws(LocalFSError) -> [UInt8]? {
        guard let (fd, st) = try openRead(path, followSymlinks: followSymlinks) else { return nil }
        defer { close(fd) }
        let expected = Int(st.st_size)
        if expected > limit { throw .io(operation: "read", path: path, errno: EFBIG) }
        var out = [UInt8](repeating: 0, count: Swift.max(expected, 0) + 1)
        var n = 0
        while true {
            if n == out.count {
                if out.count > limit { throw .io(operation: "read", path: path, errno: EFBIG) }
                out.append(contentsOf: [UInt8](repeating: 0, count: Swift.max(out.count, 4096)))
            }
            let r = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + n, $0.count - n) }
            if r < 0 { if errno == EINTR { continue }; throw .io(operation: "read", path: path, errno: errno) }
            if r == 0 { break }
            n += r
        }
        if n > limit { throw .io(operation: "read", path: path, errno: EFBIG) }
        out.removeSubrange(n...)
        return out
    }

    /// Creates `path`, which must not exist (`O_CREAT|O_EXCL|O_NOFOLLOW`), for writing. For files
    /// written straight to their final name in a directory walctl just created (restore-backup).
    public static func createExclusive(_ path: String, mode: mode_t = 0o600) throws(LocalFSError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        if fd < 0 { throw .io(operation: "create", path: path, errno: errno) }
        return fd
    }

    /// Opens an existing file to be rewritten in place (restore `--delta`): read and write, never
    /// through a symbolic link, and only a regular file with exactly one link (a file hard-linked
    /// elsewhere, as `pg_upgrade --link` leaves a cluster's files, would change under the other name
    /// too). nil when any of that does not hold, or it cannot be opened: the caller then replaces
    /// the file instead. The file's size is returned with it.
    public static func openForRewrite(_ path: String) -> (fd: Int32, size: Int64)? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1 else { return nil }
        let fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var fst = stat()
        guard fstat(fd, &fst) == 0, (fst.st_mode & S_IFMT) == S_IFREG, fst.st_nlink == 1, fst.st_ino == st.st_ino, fst.st_dev == st.st_dev else {
            close(fd); return nil
        }
        return (fd, Int64(fst.st_size))
    }

    /// Opens (creating, mode 0600) an append-only log or progress file; never through a symbolic
    /// link, and only a regular file.
    public static func openAppend(_ path: String, mode: mode_t = 0o600) throws(LocalFSError) -> Int32 {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode)
        if fd < 0 { throw .io(operation: "open", path: path, errno: errno) }
        do throws(LocalFSError) { _ = try status(fd, path: path) } catch { close(fd); throw error }
        return fd
    }

    /// Appends `bytes` to `path` (created with `mode`, and `owner` when given, if missing; never
    /// through a symbolic link) and syncs it per `durability` (`.full` also syncs the directory).
    public static func append(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600, durability: Durability,
                              owner: (uid: uid_t, gid: gid_t)? = nil) throws(LocalFSError) {
        var fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC)
        var created = false
        if fd < 0 && errno == ENOENT {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            created = fd >= 0
            if fd < 0 && errno == EEXIST { fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC) }
        }
        if fd < 0 { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        _ = try status(fd, path: path)
        if created, let o = owner, fchown(fd, o.uid, o.gid) != 0 { throw .io(operation: "chown", path: path, errno: errno) }
        try writeAll(fd, bytes, path: path)
        if durability != .none { try syncData(fd, path: path) }
        if durability == .full { try syncDirectory(directory(of: path)) }
    }

    /// Makes `path` a private (0600) regular file: created empty when missing and `create`
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`; when running as root, given to the owner of its directory, so a
    /// root run never leaves a file the PostgreSQL user cannot open), narrowed to 0600 when it is this
    /// user's and looser; nothing when it is missing and not `create`. Never through a symbolic link.
    public static func makeFilePrivate(_ path: String, create: Bool) throws(LocalFSError) {
        var created = false
        var fd: Int32 = -1
        if create {
            fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            created = fd >= 0
        }
        if fd < 0 && (!create || errno == EEXIST) { fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 {
            if errno == ENOENT && !create { return }
            if errno == ELOOP { throw .refused("\(path) is a symbolic link: refusing to follow it (walctl's own files are never links)") }
            throw .io(operation: "open", path: path, errno: errno)
        }
        defer { close(fd) }
        let st = try status(fd, path: path)
        if created && geteuid() == 0 {
            var d = stat()
            if stat(directory(of: path), &d) == 0 && d.st_uid != 0 && fchown(fd, d.st_uid, d.st_gid) != 0 {
                throw .io(operation: "chown", path: path, errno: errno)
            }
        } else if st.st_uid == geteuid() && st.st_mode & 0o077 != 0 && fchmod(fd, 0o600) != 0 {
            throw .io(operation: "chmod", path: path, errno: errno)
        }
    }

    /// Opens (creating, mode 0600) a lock file, never through a symbolic link, only a regular file.
    /// The caller `flock`s it.
    public static func openLock(_ path: String) throws(LocalFSError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw .io(operation: "open lock file", path: path, errno: errno) }
        do throws(LocalFSError) { _ = try status(fd, path: path) } catch { close(fd); throw error }
        return fd
    }

    /// Takes an exclusive flock on the directory `path` itself (no lock file: nothing is left in the
    /// directory), for a process that rewrites what it holds (restore-backup). nil when another
    /// process holds it; the lock lasts until the descriptor is closed.
    public static func lockDirectory(_ path: String) throws(LocalFSError) -> Int32? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .io(operation: "open", path: path, errno: errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            close(fd)
            if e == EWOULDBLOCK { return nil }
            throw .io(operation: "lock", path: path, errno: e)
        }
        return fd
    }

    /// True when some process holds an flock on `path` now (read-only probe, `O_NOFOLLOW`).
    public static func isLockHeld(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) != 0 { return true }
        flock(fd, LOCK_UN)
        return false
    }

    // MARK: - Whole-file writes

    /// Writes `bytes` to `path` atomically (temporary name, rename), synced per `durability`; the
    /// file gets `mode` and, when given (root restoring for postgres), `owner`.
    public static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600, durability: Durability,
                                 owner: (uid: uid_t, gid: gid_t)? = nil) throws(LocalFSError) {
        let w = try AtomicWriter(path: path, mode: mode, durability: durability, owner: owner, buffered: false)
        do throws(LocalFSError) {
            try w.write(bytes)
            try w.commit()
        } catch {
            w.abort()
            throw error
        }
    }

    // MARK: - Directories

    /// The name of the user `uid` from /etc/passwd, else the number (which `install -o` and `chown`
    /// accept as well). Not getpwuid: that would pull glibc's NSS into the static walctl-fast.
    public static func userName(_ uid: uid_t) -> String {
        guard let bytes = (try? readFile("/etc/passwd", limit: 1 << 24, followSymlinks: true)) ?? nil else {
            return String(uid)
        }
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
            if f.count >= 3, f[2] == Substring(String(uid)), !f[0].isEmpty { return String(f[0]) }
        }
        return String(uid)
    }

    /// The command that creates `dir` for `user` with mode 0700.
    public static func installCommand(_ dir: String, user: String) -> String {
        "install -d -o \(user) -m 700 \(dir)"
    }

    /// The user a private directory should belong to: the running user, or `postgres` when that is
    /// root (walctl's files belong to the PostgreSQL OS user; root runs it only by mistake or for
    /// `recover`).
    public static func intendedOwnerName() -> String {
        let uid = geteuid()
        return uid == 0 ? "postgres" : userName(uid)
    }

    /// What `makePrivateDirectory` asks of the parents that already exist.
    public enum ExistingParents: Sendable {
        /// Nothing (a restore target: the operator named it, `/var/lib`, a home directory).
        case unchecked
        /// Each must be owned by root or the running user and, when group/other-writable, sticky (as
        /// /tmp), so nobody else can swap a directory on the path (spools).
        case guarded
    }

    /// Creates `dir` and its missing parents (mode 0700), refusing a directory another user could
    /// change: `dir` must be a real directory (not a symlink) owned by the running user and not
    /// writable by group or others, and so must every parent this call created. `privateFrom` (an
    /// ancestor of `dir`, or `dir`) and everything below it are held to the rule for `dir` itself;
    /// `existingParents` says what the others must be. A relative `dir` is taken from the current
    /// directory. Refusals name the directory and the fix (`install -d -o USER -m 700 DIR`, `chmod`).
    public static func makePrivateDirectory(_ dir: String, what: String = "directory", privateFrom: String? = nil,
                                            existingParents: ExistingParents = .unchecked) throws(LocalFSError) {
        let absolute: String
        if dir.hasPrefix("/") { absolute = dir } else {
            var buf = [CChar](repeating: 0, count: 4096)
            guard getcwd(&buf, buf.count) != nil else { throw .io(operation: "getcwd", path: dir, errno: errno) }
            absolute = String(cString: buf) + "/" + dir
        }
        let comps = absolute.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !comps.contains(".."), !comps.isEmpty else {
            throw .refused("\(what) \(dir) must be a path without `..`")
        }
        let top = privateFrom ?? absolute
        var path = ""
        var created = false
        for (i, c) in comps.enumerated() {
            path += "/" + c
            var st = stat()
            if lstat(path, &st) != 0 {
                guard errno == ENOENT else { throw .io(operation: "inspect", path: path, errno: errno) }
                if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .io(operation: "create directory", path: path, errno: errno) }
                created = true
                guard lstat(path, &st) == 0 else { throw .io(operation: "inspect", path: path, errno: errno) }
            }
            if i == comps.count - 1 || created || path == top || path.hasPrefix(top + "/") {
                try checkPrivate(path, st, what: what)
            } else if existingParents == .guarded {
                try checkParent(path, st, what: what)
            }
        }
    }

    /// `dir` as a private directory: a directory, not a symlink, owned by us, not group/other-writable.
    static func checkPrivate(_ dir: String, _ st: stat, what: String) throws(LocalFSError) {
        let me = geteuid()
        if (st.st_mode & S_IFMT) == S_IFLNK {
            throw .refused("\(what) \(dir) is a symbolic link: walctl follows no link there; remove it (walctl creates the directory) or name the real directory")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .refused("\(what) \(dir) exists and is not a directory") }
        if st.st_uid != me {
            throw .refused("\(what) \(dir) is owned by \(userName(st.st_uid)), not by \(userName(me)) who runs walctl: another user could plant files in it; "
                           + "remove it and let walctl create it, or create it with `\(installCommand(dir, user: userName(me)))`")
        }
        if st.st_mode & 0o022 != 0 {
            throw .refused("\(what) \(dir) is writable by group or others (mode \(String(st.st_mode & 0o7777, radix: 8))): run `chmod go-w \(dir)` (or recreate it with `\(installCommand(dir, user: userName(me)))`)")
        }
    }

    /// An existing directory above a private one: nobody but root and us may rename things in it.
    static func checkParent(_ dir: String, _ st: stat, what: String) throws(LocalFSError) {
        let me = geteuid()
        var st = st
        let onPath = "on the \(what.hasSuffix(" directory") ? String(what.dropLast(10)) : what)'s path"
        if (st.st_mode & S_IFMT) == S_IFLNK {
            // A link on the path (/var/run -> /run): its owner could redirect it, and so could
            // everyone who may write where it points; check the target as a directory too.
            guard st.st_uid == 0 || st.st_uid == me else {
                throw .refused("\(dir), \(onPath), is a symbolic link owned by \(userName(st.st_uid)): use a directory only \(me == 0 ? "root" : userName(me) + " and root") can change")
            }
            guard stat(dir, &st) == 0 else { throw .io(operation: "inspect", path: dir, errno: errno) }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .refused("\(dir), \(onPath), is not a directory") }
        if st.st_uid != 0 && st.st_uid != me {
            throw .refused("\(dir), \(onPath), is owned by \(userName(st.st_uid)), who could replace what is below it: use a directory only \(me == 0 ? "root" : userName(me) + " and root") can change (e.g. `install -d -o \(userName(me)) -m 700 DIR`)")
        }
        if st.st_mode & 0o022 != 0 && st.st_mode & S_ISVTX == 0 {
            throw .refused("\(dir), \(onPath), is writable by group or others without the sticky bit (mode \(String(st.st_mode & 0o7777, radix: 8))): run `chmod go-w \(dir)` or use another directory")
        }
    }

    /// Creates `dir` and its missing parents with `mode` (the repository's layout directories),
    /// fsyncing each parent that gained an entry. Existing directories are accepted as they are.
    public static func makeDirectories(_ dir: String, mode: mode_t) throws(LocalFSError) {
        var st = stat()
        if stat(dir, &st) == 0 { return }
        let parent = directory(of: dir)
        if parent != dir && parent != "/" && parent != "." { try makeDirectories(parent, mode: mode) }
        if mkdir(dir, mode) != 0 && errno != EEXIST { throw .io(operation: "mkdir", path: dir, errno: errno) }
        try syncDirectory(parent)
    }

    /// Refuses a missing directory that walctl must not create itself (the catalog's): names it and
    /// the command that creates it with the right owner.
    public static func requireDirectory(_ dir: String, what: String) throws(LocalFSError) {
        var st = stat()
        if stat(dir, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .refused("\(what) \(dir) is not a directory") }
            return
        }
        if errno != ENOENT && errno != ENOTDIR { throw .io(operation: "stat", path: dir, errno: errno) }
        throw .refused("\(what) \(dir) does not exist; walctl does not create it (its owner matters): create it with `\(installCommand(dir, user: intendedOwnerName()))`")
    }
}

// MARK: - The streaming atomic writer

/// A file written under an unpredictable temporary name in the target's directory (`O_CREAT|O_EXCL|
/// O_NOFOLLOW|O_CLOEXEC`), then renamed (or hard-linked, if absent) to its name. Until `commit` the
/// target is untouched; `abort` (or deinit) removes the temporary file.
public final class AtomicWriter {
    public let path: String
    public let temp: String
    let dir: String
    let durability: Durability
    var fd: Int32
    var done = false
    var buffer: [UInt8] = []
    let buffered: Bool
    static let bufferSize = 1 << 20

    /// - Parameters:
    ///   - mode: the final file's mode (0600 unless the caller needs group read, as the repository),
    ///     narrowed by the umask as open(2) does.
    ///   - owner: when given (running as root for another user), the file's owner, set by descriptor.
    ///   - buffered: gather small writes into 1 MiB ones (streams of compressor output).
    public init(path: String, mode: mode_t = 0o600, durability: Durability,
                owner: (uid: uid_t, gid: gid_t)? = nil, buffered: Bool = true) throws(LocalFSError) {
        self.path = path
        self.durability = durability
        self.buffered = buffered
        dir = LocalFS.directory(of: path)
        let temporary = LocalFS.temporaryName(of: path)
        let prefix = temporary.directory + temporary.name + String(getpid()) + "."
        var name = prefix + LocalFS.randomName()
        var f = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        // EEXIST: someone is at that name (64 random bits: not by chance). Try fresh names a few
        // times, then give up with the error rather than loop.
        var tries = 1
        while f < 0 && errno == EEXIST && tries < 4 {
            name = prefix + LocalFS.randomName()
            f = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            tries += 1
        }
        temp = name
        fd = f
        if fd < 0 { throw .io(operation: "create", path: temp, errno: errno) }
        if let o = owner, fchown(fd, o.uid, o.gid) != 0 {
            let e = errno; close(fd); fd = -1; unlink(temp)
            throw .io(operation: "chown", path: temp, errno: e)
        }
        if buffered { buffer.reserveCapacity(Self.bufferSize) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(LocalFSError) {
        guard buffered else { try LocalFS.writeAll(fd, bytes, path: temp); return }
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try LocalFS.writeAll(fd, bytes, path: temp)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func write(_ bytes: [UInt8]) throws(LocalFSError) {
        let r: LocalFSError? = bytes.withUnsafeBytes { b in
            do throws(LocalFSError) { try write(b); return nil } catch { return error }
        }
        if let r { throw r }
    }

    private func flush() throws(LocalFSError) {
        guard !buffer.isEmpty else { return }
        let r: LocalFSError? = buffer.withUnsafeBytes { p in
            do throws(LocalFSError) { try LocalFS.writeAll(fd, p, path: temp); return nil } catch { return error }
        }
        buffer.removeAll(keepingCapacity: true)
        if let r { throw r }
    }

    private func finishData() throws(LocalFSError) {
        try flush()
        if durability != .none { try LocalFS.syncData(fd, path: temp) }
        close(fd); fd = -1
    }

    /// Renames the file to its name (replacing what is there), then syncs the directory for `.full`.
    public func commit() throws(LocalFSError) {
        try finishData()
        if rename(temp, path) != 0 { throw .io(operation: "rename to", path: path, errno: errno) }
        done = true
        if durability == .full { try LocalFS.syncDirectory(dir) }
    }

    /// Links the file to its name only if nothing is there (`link(2)`: the repository's commit marker
    /// semantics); false when the name exists (the temporary file is removed either way).
    public func commitIfAbsent() throws(LocalFSError) -> Bool {
        try finishData()
        let rc = link(temp, path)
        let e = errno
        unlink(temp)
        done = true
        if rc != 0 {
            if e == EEXIST { return false }
            throw .io(operation: "link", path: path, errno: e)
        }
        if durability == .full { try LocalFS.syncDirectory(dir) }
        return true
    }

    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        if !done { unlink(temp); done = true }
    }

    deinit { abort() }
}
