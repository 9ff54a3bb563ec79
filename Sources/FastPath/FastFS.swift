#if canImport(Glibc)
import Glibc
#endif
import LocalFS

/// File helpers for the fast front (Glibc only).
public enum FastFS {
    /// Reads a small file whole (LocalFS: never through a symbolic link unless `followSymlinks`, a
    /// regular file only); nil when it cannot be read or is larger than `limit`.
    public static func read(_ path: String, limit: Int = 1 << 16, followSymlinks: Bool = false) -> [UInt8]? {
        (try? LocalFS.readFile(path, limit: limit, followSymlinks: followSymlinks)) ?? nil
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = Glibc.stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// True for a real directory (not a symlink) owned by the running user and not writable by
    /// group or others: a spool `SpoolFS.makeDirectory` accepts.
    // security-fs: move into the layer
    public static func isPrivateDirectory(_ path: String) -> Bool {
        var st = Glibc.stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR && st.st_uid == geteuid() && st.st_mode & 0o022 == 0
    }

    /// Size and modification time (ns) by `lstat`, as `SpoolFS.fileInfo`.
    public static func fileInfo(_ path: String) -> (size: Int64, mtimeNs: Int64)? {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (Int64(st.st_size), Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
    }

    /// `SpoolLock.isHeld`: some process holds the flock on `path` now.
    public static func isLockHeld(_ path: String) -> Bool { LocalFS.isLockHeld(path) }

    /// `SpoolFS.write` (not durable): LocalFS's atomic write.
    public static func write(_ path: String, _ bytes: [UInt8]) -> Bool {
        (try? LocalFS.writeFile(path, bytes, durability: .none)) != nil
    }

    /// The current directory, or nil.
    public static func currentDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return nil }
        return String(cString: buf)
    }

    /// The kernel boot id, trimmed, or nil.
    public static func bootID() -> String? {
        guard let b = read("/proc/sys/kernel/random/boot_id") else { return nil }
        let t = FastConfig.trim(b.filter { $0 != 0x0A && $0 != 0x0D })
        return t.isEmpty ? nil : String(decoding: t, as: UTF8.self)
    }
}

/// Path rules the fast front accepts: the ones where its string handling provably matches the
/// full binary's (`cwd + "/" + path`, then NSString's last-component removal).
public enum FastPaths {
    /// `path` made absolute and split into (directory, last component), or nil for anything with
    /// empty, `.` or `..` components or a trailing slash (left to the full binary).
    public static func split(_ path: String, cwd: String?) -> (dir: String, base: String)? {
        guard !path.isEmpty, !path.hasSuffix("/") else { return nil }
        let abs: String
        if path.hasPrefix("/") { abs = path } else {
            guard let cwd, cwd.hasPrefix("/") else { return nil }
            abs = (cwd == "/" ? "" : cwd) + "/" + path
        }
        let comps = abs.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard comps.count >= 2, comps.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return nil }
        return ("/" + comps.dropLast().joined(separator: "/"), String(comps.last!))
    }

    /// The parent of an absolute clean directory, nil for `/` or one level below it.
    public static func parent(_ dir: String) -> String? {
        let comps = dir.split(separator: "/")
        guard comps.count >= 2 else { return nil }
        return "/" + comps.dropLast().joined(separator: "/")
    }
}

/// `WALFileName`'s grammar: a segment, a partial segment, a timeline history file or a backup
/// history file.
public enum FastWALName {
    static func upperHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) }

    /// True for a 24-character segment name.
    public static func isSegment(_ name: String) -> Bool {
        let u = Array(name.utf8)
        return u.count == 24 && u.allSatisfy(upperHex)
    }

    public static func isValid(_ name: String) -> Bool {
        let u = Array(name.utf8)
        func hexRun(_ r: Range<Int>) -> Bool { r.upperBound <= u.count && u[r].allSatisfy(upperHex) }
        switch u.count {
        case 24: return hexRun(0..<24)
        case 32: return hexRun(0..<24) && name.hasSuffix(".partial")
        case 16: return hexRun(0..<8) && name.hasSuffix(".history") && name.prefix(8) != "00000000"
        case 40: return hexRun(0..<24) && u[24] == 0x2E && hexRun(25..<33) && name.hasSuffix(".backup")
        default: return false
        }
    }
}

/// Waits for entries to appear in a directory: inotify (created, renamed in, closed after
/// writing), or a plain sleep where inotify is unavailable. Create it before the check it guards,
/// so an entry that appears between the check and the wait still wakes the wait.
public final class DirectoryWatch {
    private var fd: Int32

    public init(_ dir: String) {
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if fd >= 0 && inotify_add_watch(fd, dir, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)) < 0 {
            close(fd)
            fd = -1
        }
    }
    deinit { if fd >= 0 { close(fd) } }

    /// Returns when something appeared in the directory or after `milliseconds`.
    public func wait(milliseconds: Int32) {
        guard fd >= 0 else { usleep(UInt32(milliseconds) * 1000); return }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, milliseconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while buffer.withUnsafeMutableBytes({ Glibc.read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }
}

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
