import Foundation
import Storage
import WALFormat
import Codec

/// The outcome of one archive-get.
public enum GetOutcome: Equatable {
    /// The file was restored to the target path, verified.
    case restored(ArchivedFileMeta)
    /// The file is not in the archive (PostgreSQL asks for such files all the time).
    case notFound
}

/// archive-get: fetch, decompress and verify one archived file, and write it to the target path
/// atomically (temporary name, fsync, rename), so PostgreSQL never sees a partial or corrupt file.
public struct ArchiveGet {
    public var repository: Repository
    /// How long to keep retrying a failing repository before giving up.
    public var retryTime: TimeInterval
    public var warn: (String) -> Void
    /// fsync the restored file before the rename (`archive-get-fsync`; restore_command leaves it to
    /// PostgreSQL, docs/recovery.md).
    public var fsync = true

    public init(repository: Repository, retryTime: TimeInterval, warn: @escaping (String) -> Void = { _ in }) {
        self.repository = repository; self.retryTime = retryTime; self.warn = warn
    }

    /// Restores `fileName` (`%f`: a bare name, never a path) to `targetPath` (`%p`).
    public func get(fileName: String, targetPath: String) throws -> GetOutcome {
        guard let name = WALFileName(fileName) else { throw WalctlError.invalidName(fileName) }
        let deadline = Date().addingTimeInterval(retryTime)
        var attempt = 0
        while true {
            do {
                return try attemptGet(name: name, targetPath: targetPath)
            } catch let e as WalctlError where e.isTransient && Date() < deadline {
                attempt += 1
                let delay = min(5.0, 0.1 * pow(2.0, Double(min(attempt, 6)))) * Double.random(in: 0.5...1.0)
                warn("\(name): \(e) (retrying in \(String(format: "%.1f", delay)) s)")
                Thread.sleep(forTimeInterval: delay)
            }
        }
    }

    func attemptGet(name: WALFileName, targetPath: String) throws -> GetOutcome {
        let meta: ArchivedFileMeta
        do {
            guard let m = try repository.meta(for: name) else { return .notFound }
            meta = m
        } catch let e as StoreError {
            throw WalctlError.store(e)
        }
        let out = try AtomicFile(path: targetPath, durable: fsync)
        do {
            try ObjectReader(repository: repository).read(meta) { chunk in try out.write(chunk) }
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
        return .restored(meta)
    }
}

/// A file written under a temporary name in the target's directory (`.<name>.walctl-tmp.<pid>`),
/// fsynced when `durable`, then renamed over the target. Until `commit` the target is untouched.
/// Non-durable files are for spools whose records guard against an OS crash themselves.
public final class AtomicFile {
    public let path: String
    let temp: String
    let durable: Bool
    var fd: Int32
    var done = false
    var buffer: [UInt8] = []

    public init(path: String, durable: Bool = true) throws(WalctlError) {
        self.path = path
        self.durable = durable
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        temp = (dir.isEmpty ? "" : dir + "/") + "." + base + ".walctl-tmp." + String(getpid())
        fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if fd < 0 { throw .file(operation: "create", path: temp, errno: errno) }
        buffer.reserveCapacity(1 << 20)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > (1 << 20) { try flush() }
        if bytes.count >= (1 << 20) { try writeAll(bytes) } else { buffer.append(contentsOf: bytes) }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw WalctlError.file(operation: "write", path: temp, errno: errno)
            }
            off += n
        }
    }

    public func commit() throws {
        try flush()
        if durable && fsync(fd) != 0 { throw WalctlError.file(operation: "fsync", path: temp, errno: errno) }
        close(fd); fd = -1
        if rename(temp, path) != 0 { throw WalctlError.file(operation: "rename to", path: path, errno: errno) }
        done = true
    }

    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        if !done { unlink(temp); done = true }
    }

    deinit { abort() }
}
