import Foundation

/// A read-only memory map of a whole file: the WAL scan, the checksum and the compressor read the
/// same pages, so the file is read from disk once.
public final class MappedFile {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?
    private let length: Int

    public init(path: String) throws(WalctlError) {
        self.path = path
        let (fd, size) = try openRegularFile(path)
        defer { close(fd) }
        length = size
        if length == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0)
        if p == MAP_FAILED || p == nil { throw .file(operation: "mmap", path: path, errno: errno) }
        madvise(p, length, MADV_SEQUENTIAL)
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: length)
    }

    deinit { if let base { munmap(base, length) } }
}

/// Refuses, without opening it, anything at `path` but a regular file (`invalid-wal`): opening a FIFO
/// for reading blocks until a writer comes (forever, for the archiver), and opening a device can act
/// on it. `stat` follows symlinks: `pg_wal` may be a symlink, and so may the file, as long as it
/// leads to a regular file. A missing path is `file-io`.
public func checkRegularFile(_ path: String) throws(WalctlError) {
    var st = stat()
    if stat(path, &st) != 0 { throw .file(operation: "stat", path: path, errno: errno) }
    if let kind = nonRegularKind(st.st_mode) { throw .invalidWAL(file: path, reason: .notARegularFile(kind: kind)) }
}

/// What a file mode is when it is not a regular file, for messages; nil for a regular file.
func nonRegularKind(_ mode: mode_t) -> String? {
    switch mode & S_IFMT {
    case S_IFREG: return nil
    case S_IFIFO: return "a FIFO (named pipe)"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFDIR: return "a directory"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "a special file"
    }
}

/// Opens `path` for reading; refuses anything but a regular file before opening it, and again on the
/// descriptor (O_NONBLOCK, so a FIFO swapped in between cannot block the open). Returns the
/// descriptor and size.
func openRegularFile(_ path: String) throws(WalctlError) -> (fd: Int32, size: Int) {
    try checkRegularFile(path)
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    if fd < 0 { throw .file(operation: "open", path: path, errno: errno) }
    var st = stat()
    if fstat(fd, &st) != 0 { let e = errno; close(fd); throw .file(operation: "stat", path: path, errno: e) }
    if let kind = nonRegularKind(st.st_mode) { close(fd); throw .invalidWAL(file: path, reason: .notARegularFile(kind: kind)) }
    return (fd, Int(st.st_size))
}

/// A reusable buffer that whole files are read into. The background pusher keeps one per
/// compression thread: its pages are faulted in once for the daemon's life, where mapping each
/// 16 MiB segment (`MappedFile`) costs page-table work per file (~6 ms per segment measured with
/// `strace -c` on this kind of VM, more than the CRC of the segment).
final class ReadBuffer {
    private var base: UnsafeMutableRawPointer?
    private var capacity = 0

    init() {}
    deinit { base?.deallocate() }

    /// Reads the whole regular file at `path`; the bytes stay valid until the next `load`.
    func load(path: String) throws(WalctlError) -> UnsafeRawBufferPointer {
        let (fd, size) = try openRegularFile(path)
        defer { close(fd) }
        if size > capacity {
            base?.deallocate()
            base = .allocate(byteCount: size, alignment: 4096)
            capacity = size
        }
        guard let base, size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        var got = 0
        while got < size {
            let n = read(fd, base + got, size - got)
            if n < 0 {
                if errno == EINTR { continue }
                throw .file(operation: "read", path: path, errno: errno)
            }
            if n == 0 { throw .file(operation: "read (the file shrank while it was read)", path: path, errno: EIO) }
            got += n
        }
        return UnsafeRawBufferPointer(start: base, count: size)
    }
}
