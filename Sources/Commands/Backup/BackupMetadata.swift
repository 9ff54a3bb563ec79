import Catalog
import Codec
import Foundation
import Logging
import Storage
import WALFormat

/// One stored tar archive of a base backup.
public struct BackupArchive: Codable, Equatable, Sendable {
    /// Object name inside `backup/<label>/` (`base.tar.zst`, `16390.tar.zst`).
    public var object: String
    /// The archive name the server sent (`base.tar`, or `base.tar.zst` when it compressed).
    public var serverName: String
    /// Codec of the stored object (`zstd`, `gzip`, `none`).
    public var codec: String
    /// Who compressed: `server` (PostgreSQL 15+ `COMPRESSION`) or `client` (walctl).
    public var compressedBy: String
    /// Tablespace OID, nil for the main data directory.
    public var tablespaceOID: UInt32?
    /// Tablespace location on the backed-up server, nil for the main data directory.
    public var tablespaceLocation: String?
    /// Bytes stored, and their CRC-32C (8 lower-case hex digits), checked again on restore.
    public var storedSize: Int64
    public var storedCRC32C: String
    /// The store's ETag of the object right after it was stored (S3; nil on a file repository):
    /// a chain restore compares it with the listing's, so an object rewritten in place at the same
    /// size is refused before anything is written without downloading it.
    public var storedETag: String?
    /// Uncompressed tar bytes, when walctl saw them (client compression), else nil.
    public var tarSize: Int64?
    /// A further archive of the same tablespace (1, 2, ...) holding only files, nil for the one that
    /// holds its directories and links: a file-level incremental stores its large changed files in
    /// parts, one per core, so that a restore decodes them at once (docs/backup.md).
    public var part: Int?
}

/// What walctl stores about a base backup besides the catalog's `BackupRecord` fields: the objects
/// that make it up. Kept under the key `contents` in `backup/<label>/backup.json`.
public struct BackupContents: Codable, Equatable, Sendable {
    public var formatVersion: Int = 1
    public var archives: [BackupArchive]
    /// `backup_manifest` when the server sent one (PostgreSQL 13+).
    public var manifestObject: String?
    public var manifestChecksumAlgorithm: String?
    public var manifestSize: Int64?
    /// `PG_VERSION_NUM` of the server (150018).
    public var serverVersionNum: Int
    public var walSegmentSize: UInt64
    /// The WAL a restore needs for consistency, all archived before the backup was committed.
    public var firstWALSegment: String
    public var lastWALSegment: String
    /// Seconds spent streaming, and waiting for WAL.
    public var streamSeconds: Double
    public var walWaitSeconds: Double
    public var compression: String
    /// How an incremental backup was taken (docs/backup.md): `file` (walctl read the data directory
    /// on the database host; changed files stored whole) or `native` (PostgreSQL 17+ `BASE_BACKUP ...
    /// INCREMENTAL`: `INCREMENTAL.<name>` members combined on restore); nil for a full backup.
    public var incrementalMethod: String? = nil
    /// Incremental backups: every file of the restored data directory (its manifest path) that this
    /// backup's archives do NOT store, with the label of the chain member whose archives store it
    /// (always the member itself, never a further reference). Files absent here come from this
    /// backup's own archives.
    public var references: [String: String]? = nil
}

/// Reads and writes `backup/<label>/backup.json`: the catalog's `BackupRecord` fields at the top
/// level (so the catalog can decode it directly) plus `contents`.
public enum BackupMetadata {
    /// `backup/<label>/`.
    public static func prefix(label: String) -> String { RepositoryLayout.backupPrefix + label + "/" }
    /// `backup/<label>/backup.json`, the commit marker: a backup without it does not exist.
    public static func key(label: String) -> String { BackupRecord.metadataKey(label: label) }

    public static func encode(_ record: BackupRecord, _ contents: BackupContents) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        guard var top = try JSONSerialization.jsonObject(with: Data(try record.encoded())) as? [String: Any],
              let c = try JSONSerialization.jsonObject(with: enc.encode(contents)) as? [String: Any] else {
            throw WalctlError.refused("cannot encode backup \(record.label)")
        }
        top["contents"] = c
        return Array(try JSONSerialization.data(withJSONObject: top, options: [.sortedKeys, .prettyPrinted]))
    }

    private struct Wrapper: Decodable { var contents: BackupContents }

    public static func decode(_ bytes: [UInt8], key: String) throws -> (BackupRecord, BackupContents) {
        let record = try BackupRecord.decode(bytes, key: key)
        do {
            return (record, try JSONDecoder().decode(Wrapper.self, from: Data(bytes)).contents)
        } catch {
            throw WalctlError.refused("\(key) was not written by walctl backup (no readable contents): \(error)")
        }
    }

    /// Reads one backup; throws `refused` naming the label when there is no such (complete) backup.
    public static func read(label: String, repository: Repository) throws -> (BackupRecord, BackupContents) {
        try validateLabel(label)
        guard let bytes = try repository.store.get(key: key(label: label)) else {
            throw WalctlError.refused("no backup \(label) in \(repository.url) (see `walctl backup list`)")
        }
        return try decode(bytes, key: key(label: label))
    }

    /// Every committed backup in the repository, oldest first. Objects of a backup that never wrote
    /// its `backup.json` (killed, failed) are not listed.
    public static func list(repository: Repository) throws -> [BackupRecord] {
        let all = try repository.store.list(prefix: RepositoryLayout.backupPrefix).map(\.key)
        let keys = all.filter { $0.hasSuffix("/backup.json") }
        let pinned = Catalog.pinnedLabels(in: all)
        var out: [BackupRecord] = []
        for k in keys {
            guard let bytes = try repository.store.get(key: k) else { continue }
            var b = try BackupRecord.decode(bytes, key: k)
            if pinned.contains(b.label) { b.pinned = true }
            out.append(b)
        }
        return out.sorted { ($0.startTime, $0.label) < ($1.startTime, $1.label) }
    }

    /// Pins (`walctl backup pin`) or unpins a complete backup: the marker object
    /// `backup/<label>/pinned` (the repository's truth; `backup.json` is never rewritten), then the
    /// catalog's row. Waits for a running expire first, so a pin never races its removal.
    public static func setPinned(label: String, _ pinned: Bool, repository: Repository, catalog: Catalog?, logger: Logger) throws {
        try validateLabel(label)
        _ = try RepositoryLock.waitForExpire(repository.store, timeout: 600, logger: logger)
        guard try repository.store.head(key: key(label: label)) != nil else {
            throw WalctlError.refused("no backup \(label) in \(repository.url) (see `walctl backup list`)")
        }
        let marker = BackupRecord.pinKey(label: label)
        if pinned {
            let body = Array("{\"pinnedAt\":\"\(PGTimestamp(date: Date()).iso8601)\"}".utf8)
            try repositoryCall { () throws(StoreError) in try repository.store.put(key: marker, bytes: body) }
        } else {
            try repositoryCall { () throws(StoreError) in try repository.store.delete(key: marker) }
        }
        if let catalog {
            do { try catalog.setPinned(label: label, pinned) } catch { logger.warning("warning: catalog: \(error) (run walctl catalog rebuild)") }
        }
    }

    /// Labels are object key components: letters, digits, `-`, `_`, `.`; 1 to 64 characters; no
    /// leading dot.
    public static func validateLabel(_ label: String) throws {
        let ok = !label.isEmpty && label.utf8.count <= 64 && !label.hasPrefix(".") &&
            label.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) ||
                    c == 0x2D || c == 0x5F || c == 0x2E
            }
        guard ok else {
            throw WalctlError.refused("invalid backup label \"\(label)\": use 1-64 letters, digits, '-', '_' or '.', not starting with '.'")
        }
    }

    /// A label from the start time: `20261126-053012F` (UTC), `...I` for an incremental backup.
    public static func makeLabel(_ date: Date = Date(), incremental: Bool = false) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var tm = tm()
        gmtime_r(&t, &tm)
        func p(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return p(tm.tm_year + 1900, 4) + p(tm.tm_mon + 1, 2) + p(tm.tm_mday, 2) + "-" +
            p(tm.tm_hour, 2) + p(tm.tm_min, 2) + p(tm.tm_sec, 2) + (incremental ? "I" : "F")
    }
}

/// The server's `backup_manifest`: the per-file sizes and checksums a restore verifies against.
public struct ServerManifest: Sendable {
    public struct File: Sendable, Equatable {
        public var size: Int64
        public var algorithm: String
        /// Lower-case hex as the manifest prints it (for CRC32C: the four checksum bytes in memory order).
        public var checksum: String?
        /// `Last-Modified` as the manifest prints it (`2026-11-30 10:15:00 GMT`), nil when absent.
        public var lastModified: String? = nil
        public init(size: Int64, algorithm: String, checksum: String?, lastModified: String? = nil) {
            self.size = size; self.algorithm = algorithm; self.checksum = checksum; self.lastModified = lastModified
        }
    }
    public var version: Int
    public var files: [String: File]

    public init(version: Int = 1, files: [String: File]) { self.version = version; self.files = files }

    private struct Raw: Decodable {
        struct F: Decodable {
            var Path: String?
            var EncodedPath: String?
            var Size: Int64
            var ChecksumAlgorithm: String?
            var Checksum: String?
            var LastModified: String?
            enum CodingKeys: String, CodingKey {
                case Path, Size, Checksum
                case LastModified = "Last-Modified"
                case EncodedPath = "Encoded-Path"
                case ChecksumAlgorithm = "Checksum-Algorithm"
            }
        }
        var version: Int
        var files: [F]
        enum CodingKeys: String, CodingKey {
            case version = "PostgreSQL-Backup-Manifest-Version"
            case files = "Files"
        }
    }

    public init(json: [UInt8]) throws {
        let raw: Raw
        do { raw = try JSONDecoder().decode(Raw.self, from: Data(json)) } catch {
            throw WalctlError.refused("backup_manifest is unreadable: \(error)")
        }
        version = raw.version
        var files: [String: File] = [:]
        for f in raw.files {
            var path = f.Path
            if path == nil, let hex = f.EncodedPath { path = Self.decodeHex(hex) }
            guard let p = path else { continue }
            files[p] = File(size: f.Size, algorithm: (f.ChecksumAlgorithm ?? "NONE").uppercased(),
                            checksum: f.Checksum?.lowercased(), lastModified: f.LastModified)
        }
        self.files = files
    }

    static func decodeHex(_ hex: String) -> String? {
        var bytes: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let v = UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(v)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Checks one file's bytes against its entry: listed, the same size, and (CRC32C manifests) the
    /// same checksum. Throws `refused` for a file the manifest does not list, `checksumMismatch`
    /// otherwise.
    public func verify(_ key: String, size: Int64, crc32c: UInt32) throws {
        guard let m = files[key] else { throw WalctlError.refused("\(key) is in the backup archive but not in its manifest") }
        guard m.size == size else {
            throw WalctlError.checksumMismatch(name: key, expected: m.checksum ?? "-", actual: "-", size: size, expectedSize: m.size)
        }
        if m.algorithm == "CRC32C", let expected = m.checksum {
            let actual = Self.crc32cHex(crc32c)
            guard actual == expected else {
                throw WalctlError.checksumMismatch(name: key, expected: expected, actual: actual, size: size, expectedSize: m.size)
            }
        }
    }

    /// The manifest's text for a CRC-32C value: PostgreSQL prints the checksum's bytes in memory
    /// order (little-endian here), hex encoded.
    public static func crc32cHex(_ v: UInt32) -> String {
        let le = v.littleEndian
        return withUnsafeBytes(of: le) { b in
            b.map { x -> String in let s = String(x, radix: 16); return s.count == 1 ? "0" + s : s }.joined()
        }
    }
}
