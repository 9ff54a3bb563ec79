import Foundation
import LocalFS

/// A repository on a local (or mounted) filesystem: the embedded default.
///
/// Durability: every object is written through LocalFS's `AtomicWriter` to an unpredictable temporary
/// name in its final directory, fdatasynced, then renamed (or hard-linked when `ifAbsent`, so an
/// existing object is never replaced), and the directory is fsynced. Readers never see a partial object. Temporary names start with `.` and are skipped by
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
        try FileObjectWriter(final: path(key), ifAbsent: options.ifAbsent, key: key, deferDirectorySync: options.directorySyncedByNextCommit)
    }

    public func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let p = path(key)
        let opened: (fd: Int32, status: stat)?
        do { opened = try LocalFS.openRead(p) } catch { throw StoreError(error) }
        guard let fd = opened?.fd else { throw StoreError.notFound(key: key) }
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
        var out: [ObjectInfo] = []
        try walkFiles(prefix: prefix, hidden: false) { key, st in out.append(ObjectInfo(key: key, size: Int64(st.st_size))) }
        out.sort { $0.key < $1.key }
        return out
    }

    /// Every regular file whose key starts with `prefix`, with its `lstat`, in no particular order.
    /// `.`-prefixed directories are never entered; `.`-prefixed files (temporary objects) are
    /// reported only when `hidden` (`listDetailed`).
    func walkFiles(prefix: String, hidden: Bool, _ emit: (String, stat) -> Void) throws(StoreError) {
        let slash = prefix.lastIndex(of: "/")
        try walk(dirKey: slash.map { String(prefix[..<$0]) } ?? "", filter: prefix, hidden: hidden, emit)
    }

    private func walk(dirKey: String, filter: String, hidden: Bool, _ emit: (String, stat) -> Void) throws(StoreError) {
        let dirPath = dirKey.isEmpty ? root : path(dirKey)
        guard let dir = opendir(dirPath) else {
            if errno == ENOENT || errno == ENOTDIR { return }
            throw .io(operation: "opendir", path: dirPath, errno: errno)
        }
        defer { closedir(dir) }
        var subdirs: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." || (!hidden && name.hasPrefix(".")) { continue }
            let key = dirKey.isEmpty ? name : dirKey + "/" + name
            var st = stat()
            guard lstat(dirPath + "/" + name, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if !name.hasPrefix("."), key.hasPrefix(filter) || filter.hasPrefix(key + "/") { subdirs.append(key) }
            } else if (st.st_mode & S_IFMT) == S_IFREG, key.hasPrefix(filter) {
                emit(key, st)
            }
        }
        for d in subdirs { try walk(dirKey: d, filter: filter, hidden: hidden, emit) }
    }

    public func delete(key: String) throws(StoreError) {
        if unlink(path(key)) != 0 && errno != ENOENT {
            throw .io(operation: "unlink", path: path(key), errno: errno)
        }
    }
}

extension StoreError {
    /// The store's form of a local-filesystem failure (same operation, path and errno).
    init(_ e: LocalFSError) {
        switch e {
        case .io(let op, let p, let n): self = .io(operation: op, path: p, errno: n)
        case .refused(let m): self = .configuration(m)
        }
    }
}

/// One object being written: LocalFS's atomic writer (unpredictable temporary name, `O_EXCL|O_NOFOLLOW`,
/// fdatasync, rename or link-if-absent, directory fsync).
final class FileObjectWriter: ObjectWriter {
    let key: String
    let ifAbsent: Bool
    let file: AtomicWriter

    init(final: String, ifAbsent: Bool, key: String, deferDirectorySync: Bool = false) throws(StoreError) {
        self.key = key
        self.ifAbsent = ifAbsent
        do {
            try LocalFS.makeDirectories(LocalFS.directory(of: final), mode: 0o750)
            // `.data`: the caller's next commit in this directory (the meta) fsyncs the directory.
            file = try AtomicWriter(path: final, mode: 0o640, durability: deferDirectorySync ? .data : .full)
        } catch { throw StoreError(error) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        do { try file.write(bytes) } catch { throw StoreError(error) }
    }

    func commit() throws(StoreError) {
        if ifAbsent {
            let linked: Bool
            do { linked = try file.commitIfAbsent() } catch { throw StoreError(error) }
            if !linked { throw .alreadyExists(key: key) }
        } else {
            do { try file.commit() } catch { throw StoreError(error) }
        }
    }

    func abort() { file.abort() }
}
