import Foundation

/// What a listing or a head request says about one stored object.
public struct ObjectInfo: Equatable, Sendable {
    public var key: String
    public var size: Int64
    /// The store's fingerprint of the object's bytes (S3's ETag, without its quotes); nil when the
    /// store keeps none (a file repository). A rewritten object has a new one even at the same size.
    public var etag: String?
    public init(key: String, size: Int64, etag: String? = nil) {
        self.key = key; self.size = size; self.etag = etag.map(Self.normalizedETag)
    }

    /// An ETag as S3 sends it (`"hex"` or `"hex-N"`, quoted in headers and listings) without quotes
    /// and in lower case, so the header's and the listing's forms compare equal.
    public static func normalizedETag(_ e: String) -> String {
        var t = Substring(e.trimmingCharacters(in: .whitespaces))
        if t.hasPrefix("W/") { t = t.dropFirst(2) }
        if t.hasPrefix("\"") { t = t.dropFirst() }
        if t.hasSuffix("\"") { t = t.dropLast() }
        return t.lowercased()
    }
}

/// Options for storing one object.
public struct PutOptions: Sendable {
    /// Fail with `StoreError.alreadyExists` instead of replacing an existing object
    /// (`link(2)` on a filesystem, `If-None-Match: *` on S3).
    public var ifAbsent: Bool
    /// The caller commits another object in the same directory (key prefix) right after this one
    /// and before it reports success (a data object, then its `.meta`): a file store may leave the
    /// directory's fsync to that commit, which makes both names durable at once (one directory
    /// fsync per archived segment instead of two). If the process dies between the two, the meta
    /// was never written and the file was never acknowledged: PostgreSQL pushes it again.
    public var directorySyncedByNextCommit: Bool
    public init(ifAbsent: Bool = false) { self.init(ifAbsent: ifAbsent, directorySyncedByNextCommit: false) }
    public init(ifAbsent: Bool = false, directorySyncedByNextCommit: Bool) {
        self.ifAbsent = ifAbsent; self.directorySyncedByNextCommit = directorySyncedByNextCommit
    }
}

/// Storage failures, each naming the object so an operator can find it.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The object does not exist. The only error that means "not archived".
    case notFound(key: String)
    /// `ifAbsent` was asked and the key already holds an object.
    case alreadyExists(key: String)
    /// A local system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// The server answered with an HTTP error.
    case http(status: Int, code: String, message: String, bucket: String, key: String)
    /// The request never got an answer (connection refused, reset, timeout, TLS failure).
    case transport(message: String, key: String)
    /// The store is configured wrongly (bad URL, missing credentials, unknown setting).
    case configuration(String)
    /// No AWS credentials could be had from `source` (the chain, web identity, container, instance
    /// metadata): `message` says why, never a secret.
    case credentials(source: String, message: String)

    /// True when retrying the same request later may succeed.
    public var isTransient: Bool {
        switch self {
        case .transport: return true
        case .http(let s, _, _, _, _): return s >= 500 || s == 429 || s == 408
        case .io(_, _, let e): return e == EINTR || e == EAGAIN || e == EIO
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .notFound(let k): return "object \(k) not found"
        case .alreadyExists(let k): return "object \(k) already exists"
        case .io(let op, let p, let e): return "\(op) \(p): \(String(cString: strerror(e)))"
        case .http(let s, let c, let m, let b, let k):
            return "S3 \(s) \(c) on bucket \(b) key \(k)\(m.isEmpty ? "" : ": " + m)"
        case .transport(let m, let k): return "S3 request for \(k) failed: \(m)"
        case .configuration(let m): return m
        case .credentials(let source, let m): return "AWS credentials from \(source): \(m)"
        }
    }
}

/// A streaming upload of one object. Nothing is visible under the key until `commit()` returns.
public protocol ObjectWriter: AnyObject {
    /// Appends bytes to the object.
    func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError)
    /// Makes the object durable and visible under its key; after it returns the object survives a crash
    /// (fsync + rename + directory fsync on disk, a confirmed PUT or CompleteMultipartUpload on S3).
    func commit() throws(StoreError)
    /// Drops everything written; safe to call after a failed write or commit, and more than once.
    func abort()
}

/// The repository's storage: one flat namespace of keys (`a/b/c`), the same contract for every driver.
///
/// Every method is safe to call from several processes at once. Keys use `/` as separator and never
/// contain `..` components (callers build keys from validated names only).
public protocol ObjectStore: AnyObject {
    /// A short description for messages (`file:///path` or `s3://bucket/prefix`); never holds secrets.
    var location: String { get }
    /// Starts a streaming upload of `key`.
    func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter
    /// Streams the object's bytes to `sink` in chunks. Throws `.notFound` when absent.
    func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Size of the object, or nil when it does not exist.
    func head(key: String) throws(StoreError) -> ObjectInfo?
    /// Every object whose key starts with `prefix`, in key order (continuation handled inside).
    func list(prefix: String) throws(StoreError) -> [ObjectInfo]
    /// Removes the object; removing a missing object is not an error.
    func delete(key: String) throws(StoreError)
}

extension ObjectStore {
    /// Stores a small object whole (metadata, history files, manifests).
    public func put(key: String, bytes: [UInt8], options: PutOptions = .init()) throws(StoreError) {
        let w = try makeWriter(key: key, options: options)
        do throws(StoreError) {
            for start in stride(from: 0, to: max(bytes.count, 1), by: 1 << 20) {
                let end = min(bytes.count, start + (1 << 20))
                let failure: StoreError? = bytes[start..<end].withUnsafeBytes { b in
                    do throws(StoreError) { try w.write(b); return nil } catch { return error }
                }
                if let failure { throw failure }
            }
            try w.commit()
        } catch {
            w.abort()
            throw error
        }
    }

    /// Reads a small object whole; nil when it does not exist.
    public func get(key: String) throws -> [UInt8]? {
        var out: [UInt8] = []
        do {
            try read(key: key) { out.append(contentsOf: $0) }
        } catch StoreError.notFound {
            return nil
        }
        return out
    }
}
