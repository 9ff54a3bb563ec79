#if canImport(Glibc)
import Glibc
#endif

/// A `flock(2)` on a spool directory itself (docs/async.md, "The spool's life"): a foreground
/// archive-get holds it shared while it writes its request into the spool or serves a segment
/// from it; whoever removes the directory (the prefetcher told to stop, `--cleanup`) holds it
/// exclusively. So the directory can never vanish under a foreground that is using it, and a
/// foreground never writes into a directory being removed. The lock is on the directory's inode:
/// after taking it the holder checks that the path still names that inode (it was not removed,
/// or removed and created again, between the `open` and the `flock`).
///
/// The lock dies with its file descriptor (and the process): a crash leaves nothing behind.
public final class SpoolDirectoryLock {
    public let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) { self.path = path; self.fd = fd }
    deinit { release() }

    /// A shared lock on `dir`, taken within `seconds`. With `create` the directory (mode 0700, its
    /// parent must exist) is made when absent, also when it was removed while the lock was being
    /// taken. nil: the directory is absent (and not created), keeps being removed, cannot be
    /// opened, or an exclusive holder kept it for `seconds`: the caller does without the spool.
    public static func shared(_ dir: String, create: Bool, seconds: Double = 2) -> SpoolDirectoryLock? {
        let deadline = monotonicSeconds() + seconds
        for _ in 0..<8 {
            if create && mkdir(dir, 0o700) != 0 && errno != EEXIST { return nil }
            guard let lock = take(dir, operation: LOCK_SH, deadline: deadline) else {
                if !create || monotonicSeconds() >= deadline { return nil }
                continue
            }
            return lock
        }
        return nil
    }

    /// An exclusive lock on `dir`, taken within `seconds`; nil when the directory is absent or the
    /// lock could not be had in time (a foreground is using the spool: leave the directory).
    public static func exclusive(_ dir: String, seconds: Double = 5) -> SpoolDirectoryLock? {
        take(dir, operation: LOCK_EX, deadline: monotonicSeconds() + seconds)
    }

    /// Opens `dir`, takes the lock (polling every millisecond until `deadline`), and checks that
    /// `dir` still names the locked directory. nil when any step fails.
    private static func take(_ dir: String, operation: Int32, deadline: Double) -> SpoolDirectoryLock? {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { return nil }
        while flock(fd, operation | LOCK_NB) != 0 {
            if (errno != EWOULDBLOCK && errno != EINTR) || monotonicSeconds() >= deadline { close(fd); return nil }
            usleep(1_000)
        }
        var held = Glibc.stat(), named = Glibc.stat()
        guard fstat(fd, &held) == 0, held.st_nlink > 0, stat(dir, &named) == 0,
              held.st_ino == named.st_ino, held.st_dev == named.st_dev else {
            close(fd)
            return nil
        }
        return SpoolDirectoryLock(path: dir, fd: fd)
    }

    /// Releases the lock (idempotent).
    public func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }
}
