import Foundation

/// A repository on a local (or mounted) filesystem: the embedded default.
///
/// Durability: every object is written to a temporary name in its final directory, fsynced, then
/// renamed (or hard-linked when `ifAbsent`, so an existing object is never replaced), and the directory
/// is fsynced. Readers never see a partial object. Temporary names start with `.` and are skipped by
/// `list`.
public final class FileStore: ObjectStore {
    public let root: String
    public var location: String { "file://" + root }

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    func path(_ key: String) -> String { root + "/" + key }

    public func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter {
        try FileObjectWriter(final: path(key), ifAbsent: options.ifAbsent, key: key)
    }

    public func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let p = path(key)
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { throw StoreError.notFound(key: key) }
            throw StoreError.io(operation: "open", path: p, errno: errno)
        }
        defer { close(fd) }
        let chunk = 1 << 20
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = Foundation.read(fd, buf.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.io(operation: "read", path: p, errno: errno)
            }
            if n == 0 { break }
            try sink(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
    }

    public func head(key: String) throws(StoreError) -> ObjectInfo? {
        var st = stat()
        if stat(path(key), &st) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io(operation: "stat", path: path(key), errno: errno)
        }
        return ObjectInfo(key: key, size: Int64(st.st_size))
    }

    public func list(prefix: String) throws(StoreError) -> [ObjectInfo] {
        let slash = prefix.lastIndex(of: "/")
        let dirKey = slash.map { String(prefix[..<$0]) } ?? ""
        var out: [ObjectInfo] = []
        try walk(dirKey: dirKey, filter: prefix, into: &out)
        out.sort { $0.key < $1.key }
        return out
    }

    private func walk(dirKey: String, filter: String, into out: inout [ObjectInfo]) throws(StoreError) {
        let dirPath = dirKey.isEmpty ? root : path(dirKey)
        guard let dir = opendir(dirPath) else {
            if errno == ENOENT || errno == ENOTDIR { return }
            throw .io(operation: "opendir", path: dirPath, errno: errno)
        }
        defer { closedir(dir) }
        var subdirs: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasPrefix(".") { continue }
            let key = dirKey.isEmpty ? name : dirKey + "/" + name
            var st = stat()
            guard lstat(dirPath + "/" + name, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if key.hasPrefix(filter) || filter.hasPrefix(key + "/") { subdirs.append(key) }
            } else if (st.st_mode & S_IFMT) == S_IFREG, key.hasPrefix(filter) {
                out.append(ObjectInfo(key: key, size: Int64(st.st_size)))
            }
        }
        for d in subdirs { try walk(dirKey: d, filter: filter, into: &out) }
    }

    public func delete(key: String) throws(StoreError) {
        if unlink(path(key)) != 0 && errno != ENOENT {
            throw .io(operation: "unlink", path: path(key), errno: errno)
        }
    }
}

/// Creates `dir` and its missing parents, fsyncing each parent that gained an entry.
func makeDirectories(_ dir: String) throws(StoreError) {
    var st = stat()
    if stat(dir, &st) == 0 { return }
    let parent = (dir as NSString).deletingLastPathComponent
    if !parent.isEmpty && parent != dir { try makeDirectories(parent) }
    if mkdir(dir, 0o750) != 0 && errno != EEXIST { throw .io(operation: "mkdir", path: dir, errno: errno) }
    try fsyncDirectory(parent.isEmpty ? "." : parent)
}

/// fsync(2) on a directory, so a rename or a new entry in it survives a crash.
public func fsyncDirectory(_ dir: String) throws(StoreError) {
    let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd < 0 { throw .io(operation: "open directory", path: dir, errno: errno) }
    defer { close(fd) }
    if fsync(fd) != 0 && errno != EINVAL { throw .io(operation: "fsync directory", path: dir, errno: errno) }
}

final class FileObjectWriter: ObjectWriter {
    let final: String
    let temp: String
    let dir: String
    let ifAbsent: Bool
    let key: String
    var fd: Int32
    var buffer: [UInt8] = []
    var done = false
    static let bufferSize = 1 << 20

    init(final: String, ifAbsent: Bool, key: String) throws(StoreError) {
        self.final = final
        self.ifAbsent = ifAbsent
        self.key = key
        dir = (final as NSString).deletingLastPathComponent
        let base = (final as NSString).lastPathComponent
        temp = dir + "/." + base + ".tmp." + String(getpid()) + "." + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try makeDirectories(dir)
        fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        if fd < 0 { throw .io(operation: "create", path: temp, errno: errno) }
        buffer.reserveCapacity(Self.bufferSize)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    private func flush() throws(StoreError) {
        guard !buffer.isEmpty else { return }
        let result: StoreError? = buffer.withUnsafeBytes { p in
            do throws(StoreError) { try writeAll(p); return nil } catch { return error }
        }
        buffer.removeAll(keepingCapacity: true)
        if let result { throw result }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        var off = 0
        while off < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", path: temp, errno: errno)
            }
            off += n
        }
    }

    func commit() throws(StoreError) {
        try flush()
        if fsync(fd) != 0 { throw .io(operation: "fsync", path: temp, errno: errno) }
        close(fd); fd = -1
        if ifAbsent {
            if link(temp, final) != 0 {
                let e = errno
                unlink(temp)
                done = true
                if e == EEXIST { throw .alreadyExists(key: key) }
                throw .io(operation: "link", path: final, errno: e)
            }
            unlink(temp)
        } else if rename(temp, final) != 0 {
            throw .io(operation: "rename", path: final, errno: errno)
        }
        done = true
        try fsyncDirectory(dir)
    }

    func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        if !done { unlink(temp); done = true }
    }

    deinit { abort() }
}
