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

/// Opens `path` for reading; refuses anything but a regular file. Returns the descriptor and size.
func openRegularFile(_ path: String) throws(WalctlError) -> (fd: Int32, size: Int) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw .file(operation: "open", path: path, errno: errno) }
    var st = stat()
    if fstat(fd, &st) != 0 { let e = errno; close(fd); throw .file(operation: "stat", path: path, errno: e) }
    guard (st.st_mode & S_IFMT) == S_IFREG else { close(fd); throw .file(operation: "read (not a regular file)", path: path, errno: EINVAL) }
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
