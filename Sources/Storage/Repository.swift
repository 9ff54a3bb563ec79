import Foundation
import WALFormat

/// The cluster a repository is bound to, stored as `repository.json` at the repository root.
/// One repository holds one cluster's archive: a segment from another system is refused.
public struct RepositoryInfo: Codable, Equatable, Sendable {
    public var formatVersion: Int
    /// Kept as a decimal string: JSON numbers lose precision above 2^53.
    public var systemIdentifier: String
    public var walSegmentSize: UInt64
    public var pgVersion: Int
    public var createdAt: PGTimestamp
    /// Client-side encryption (docs/encryption.md): the wrapped data key and how to unwrap it; nil
    /// (absent from the JSON) for a plaintext repository.
    public var encryption: RepositoryEncryption?

    public init(systemIdentifier: UInt64, walSegmentSize: UInt64, pgVersion: Int, createdAt: PGTimestamp) {
        formatVersion = 1
        self.systemIdentifier = String(systemIdentifier)
        self.walSegmentSize = walSegmentSize
        self.pgVersion = pgVersion
        self.createdAt = createdAt
    }
    public var systemID: UInt64 { UInt64(systemIdentifier) ?? 0 }
    public var segmentSize: WALSegmentSize? { WALSegmentSize(bytes: walSegmentSize) }
}

/// What walctl keeps about one archived file, stored beside the object as `<name>.meta` (JSON).
///
/// The meta object is written *after* the data object and is the commit marker: an object without
/// its meta was never acknowledged to PostgreSQL and may be replaced; a file with a meta is archived.
public struct ArchivedFileMeta: Codable, Equatable, Sendable {
    /// The PostgreSQL file name (`000000010000000000000003`, `00000002.history`, ...).
    public var name: String
    /// Size of the original file in bytes.
    public var size: Int64
    /// Size of the stored (compressed) object in bytes.
    public var storedSize: Int64
    /// Codec name (`zstd`, `gzip`, `none`).
    public var codec: String
    /// CRC-32C of the original bytes, 8 lower-case hex digits.
    public var crc32c: String
    public var archivedAt: PGTimestamp
    /// The WAL summary, for segments and partial segments.
    public var summary: SegmentSummary?

    public init(name: String, size: Int64, storedSize: Int64, codec: String, crc32c: UInt32,
                archivedAt: PGTimestamp, summary: SegmentSummary?) {
        self.name = name; self.size = size; self.storedSize = storedSize; self.codec = codec
        self.crc32c = Self.hex(crc32c); self.archivedAt = archivedAt; self.summary = summary
    }
    public static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16); return String(repeating: "0", count: 8 - s.count) + s
    }
    public var checksum: UInt32? { UInt32(crc32c, radix: 16) }

    /// The key of the data object this meta describes, or nil when the meta is malformed.
    public var objectKey: String? {
        guard let n = WALFileName(name), let c = checksum else { return nil }
        let ext: String
        switch codec { case "zstd": ext = "zst"; case "gzip": ext = "gz"; case "none": ext = ""; default: return nil }
        return RepositoryLayout.objectKey(n, crc32c: c, extension: ext)
    }
}

/// Where everything lives inside a repository. Keys are computed from validated names only, so a
/// restore is one direct GET (no listing on the restore path).
///
/// ```
/// repository.json                                    the cluster binding (RepositoryInfo)
/// wal/TTTTTTTTLLLLLLLL/<segment>.<crc32c>.<ext>      WAL, compressed (.zst, .gz, or no extension)
/// wal/TTTTTTTTLLLLLLLL/<segment>.meta                its ArchivedFileMeta (the commit marker)
/// wal/TTTTTTTTLLLLLLLL/<segment>.partial.<crc>.<ext> partial segments, and their .meta
/// wal/TTTTTTTTLLLLLLLL/<seg>.<offset>.backup.<crc>.<ext>  backup history files
/// wal/TTTTTTTTLLLLLLLL/<segment>.skipped             safety valve: reported archived, NOT stored (SkipRecord)
/// wal/history/TTTTTTTT.history.<crc>.<ext>           timeline history files
/// backup/<label>/...                                 base backups
/// ```
public enum RepositoryLayout {
    public static let infoKey = "repository.json"
    public static let walPrefix = "wal/"
    public static let metaSuffix = ".meta"
    /// The suffix of a safety-valve skip marker (docs/async.md).
    public static let skippedSuffix = ".skipped"
    public static let backupPrefix = "backup/"

    /// The directory (key prefix, no trailing slash) for a WAL file name.
    public static func directory(for name: WALFileName) -> String {
        switch name {
        case .history: return "wal/history"
        case .segment(let s), .partial(let s), .backupHistory(let s, _): return "wal/" + s.prefix(16)
        }
    }
    /// The data object's key: the name, the CRC-32C of the original bytes and the codec's extension
    /// ("" for none), e.g. `wal/0000000100000000/000000010000000000000003.1c2b3a4d.zst`.
    ///
    /// Content-addressed on purpose: two different files pushed under one name (a misconfigured
    /// second cluster, a race) can never overwrite each other's data object; the meta decides
    /// which one is archived.
    public static func objectKey(_ name: WALFileName, crc32c: UInt32, extension ext: String) -> String {
        directory(for: name) + "/" + name.description + "." + ArchivedFileMeta.hex(crc32c) + (ext.isEmpty ? "" : "." + ext)
    }
    public static func metaKey(_ name: WALFileName) -> String {
        directory(for: name) + "/" + name.description + metaSuffix
    }
    /// The WAL file name a data object's file name starts with (`<name>.<crc>.<ext>`, `<name>.<ext>`,
    /// or `<name>`), or nil: the longest prefix that is a WAL file name (names have at most two dots:
    /// `.backup`).
    public static func walFileName(prefixOf file: String) -> String? {
        let parts = file.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for n in stride(from: min(3, parts.count), through: 1, by: -1) {
            let candidate = parts[0..<n].joined(separator: ".")
            if WALFileName(candidate) != nil { return candidate }
        }
        return nil
    }
    /// The key of the marker the safety valve stores for a file it let go without storing it.
    public static func skipMarkerKey(_ name: WALFileName) -> String {
        directory(for: name) + "/" + name.description + skippedSuffix
    }
}

/// A repository: a store plus its layout and binding.
public final class Repository {
    public let store: ObjectStore
    public let url: String

    public init(store: ObjectStore, url: String) { self.store = store; self.url = url }

    /// The binding as `RepositoryFactory` just read it to find the key: answers the first
    /// `binding()` call (archive-push reads the binding once, not twice; a GET less on S3), every
    /// later call reads the store again (long-running processes see changes).
    public init(store: ObjectStore, url: String, justRead binding: RepositoryInfo) {
        self.store = store; self.url = url; self.justRead = binding
    }
    private var justRead: RepositoryInfo?
    private let justReadLock = NSLock()

    /// True when objects are encrypted on the way in and authenticated on the way out.
    public var isEncrypted: Bool { store is EncryptedStore }
    /// The store underneath encryption (which driver it is: file or S3).
    public var baseStore: ObjectStore { (store as? EncryptedStore)?.base ?? store }

    /// The binding, or nil when the repository has not been initialised. An encrypted repository
    /// opened without its key is refused here (`CipherError.key`), so nothing writes plaintext
    /// objects into it.
    public func info() throws -> RepositoryInfo? {
        guard let info = try binding() else { return nil }
        if info.encryption != nil && !isEncrypted {
            throw CipherError.key("repository \(url) is encrypted (\(info.encryption?.cipher ?? "")): set repository-cipher = aes-256-gcm and its passphrase (repository-cipher-pass, repository-cipher-pass-file or WALCTL_REPOSITORY_CIPHER_PASS)")
        }
        return info
    }

    /// The binding as stored, without the encryption check (to find the wrapped key).
    public func binding() throws -> RepositoryInfo? {
        justReadLock.lock()
        let first = justRead
        justRead = nil
        justReadLock.unlock()
        if let first { return first }
        guard let bytes = try store.get(key: RepositoryLayout.infoKey) else { return nil }
        do {
            return try JSONDecoder().decode(RepositoryInfo.self, from: Data(bytes))
        } catch {
            throw StoreError.configuration("\(url)/\(RepositoryLayout.infoKey) is not a walctl repository file: \(error)")
        }
    }

    /// Replaces the binding as it is (key rotation: the same cluster, a rewrapped key).
    public func writeBinding(_ info: RepositoryInfo) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try store.put(key: RepositoryLayout.infoKey, bytes: Array(try enc.encode(info)))
    }

    /// Writes the binding; refuses to rebind a repository bound to another system. An existing
    /// binding keeps its encryption envelope.
    public func bind(_ info: RepositoryInfo) throws {
        var info = info
        if let existing = try self.info() {
            info.encryption = existing.encryption
            guard existing.systemIdentifier == info.systemIdentifier else {
                throw StoreError.configuration(
                    "repository \(url) is bound to database system \(existing.systemIdentifier), not \(info.systemIdentifier): use another repository for this cluster")
            }
            guard existing.walSegmentSize == info.walSegmentSize else {
                throw StoreError.configuration("repository \(url) holds \(existing.walSegmentSize)-byte segments, the cluster uses \(info.walSegmentSize)")
            }
            if existing.pgVersion == info.pgVersion { return }
        }
        try writeBinding(info)
    }

    /// The meta of an archived file, or nil when it was never (completely) archived.
    public func meta(for name: WALFileName) throws -> ArchivedFileMeta? {
        guard let bytes = try store.get(key: RepositoryLayout.metaKey(name)) else { return nil }
        return try Self.decodeMeta(bytes, key: RepositoryLayout.metaKey(name))
    }

    public static func decodeMeta(_ bytes: [UInt8], key: String) throws -> ArchivedFileMeta {
        if ChunkFormat.looksEncrypted(bytes) {
            throw CipherError.key("archive metadata \(key) is encrypted: set repository-cipher = aes-256-gcm and its passphrase")
        }
        do {
            return try JSONDecoder().decode(ArchivedFileMeta.self, from: Data(bytes))
        } catch {
            throw StoreError.configuration("archive metadata \(key) is unreadable: \(error)")
        }
    }

    public static func encodeMeta(_ meta: ArchivedFileMeta) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Array(try enc.encode(meta))
    }

    /// Every archived file's meta key, in key order (used by catalog rebuild and check).
    public func listMetaKeys() throws -> [ObjectInfo] {
        try listWAL().metas
    }

    /// One listing of `wal/`, split into the meta keys (archived files) and the safety valve's skip
    /// markers, each in key order.
    public func listWAL() throws -> (metas: [ObjectInfo], skipMarkers: [ObjectInfo]) {
        var metas: [ObjectInfo] = [], markers: [ObjectInfo] = []
        for o in try store.list(prefix: RepositoryLayout.walPrefix) {
            if o.key.hasSuffix(RepositoryLayout.metaSuffix) { metas.append(o) }
            else if o.key.hasSuffix(RepositoryLayout.skippedSuffix) { markers.append(o) }
        }
        return (metas, markers)
    }
}
