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
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .file(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw .file(operation: "stat", path: path, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .file(operation: "read (not a regular file)", path: path, errno: EINVAL) }
        length = Int(st.st_size)
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
