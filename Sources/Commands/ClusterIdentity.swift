import Foundation
import WALFormat
import Storage

/// The identity of a cluster, read from its data directory without a running server:
/// the system identifier from `global/pg_control`, the major version from `PG_VERSION`, and the WAL
/// segment size from the long page header of a segment in `pg_wal` (pg_control's layout moves
/// between versions; the page header's does not).
public struct ClusterIdentity: Equatable {
    public var systemIdentifier: UInt64
    public var segmentSize: WALSegmentSize
    public var pgVersion: Int

    public init(systemIdentifier: UInt64, segmentSize: WALSegmentSize, pgVersion: Int) {
        self.systemIdentifier = systemIdentifier; self.segmentSize = segmentSize; self.pgVersion = pgVersion
    }

    public static func read(pgdata: String) throws -> ClusterIdentity {
        let versionPath = pgdata + "/PG_VERSION"
        guard let v = FileManager.default.contents(atPath: versionPath) else {
            throw WalctlError.refused("\(pgdata) is not a PostgreSQL data directory (cannot read PG_VERSION)")
        }
        let text = String(decoding: v, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let major = Int(text.split(separator: ".").first ?? ""), major >= 12 else {
            throw WalctlError.refused("PostgreSQL \(text) in \(pgdata) is not supported (walctl supports 12 to 18)")
        }
        let controlPath = pgdata + "/global/pg_control"
        guard let control = FileManager.default.contents(atPath: controlPath), control.count >= 16 else {
            throw WalctlError.refused("cannot read \(controlPath)")
        }
        let sysid = control.withUnsafeBytes { $0.loadLE(UInt64.self, at: 0) }

        let walDir = pgdata + "/pg_wal"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: walDir)) ?? []
        let segments = names.filter { $0.utf8.count == 24 && WALFileName($0) != nil }.sorted()
        guard let newest = segments.last else {
            throw WalctlError.refused("no WAL segment in \(walDir) to read the segment size from")
        }
        let segPath = walDir + "/" + newest
        guard let fh = FileHandle(forReadingAtPath: segPath) else {
            throw WalctlError.file(operation: "open", path: segPath, errno: errno)
        }
        defer { try? fh.close() }
        let head = fh.readData(ofLength: WALPage.longHeaderSize)
        let header: LongPageHeader
        do { header = try head.withUnsafeBytes { try LongPageHeader(bytes: $0) } } catch let e as WALFormatError {
            throw WalctlError.invalidWAL(file: segPath, reason: e)
        }
        guard let size = WALSegmentSize(bytes: UInt64(header.segmentSize)) else {
            throw WalctlError.invalidWAL(file: segPath, reason: .invalidSegmentSize(UInt64(header.segmentSize)))
        }
        guard header.systemIdentifier == sysid else {
            throw WalctlError.invalidWAL(file: segPath, reason: .systemIdentifierMismatch(segment: header.systemIdentifier, repository: sysid))
        }
        return ClusterIdentity(systemIdentifier: sysid, segmentSize: size, pgVersion: major)
    }
}

/// `walctl init`: binds the repository to the cluster.
public enum RepositoryInit {
    /// Binds the configured repository to `identity`; idempotent for the same cluster, refuses another.
    @discardableResult
    public static func run(config: Configuration, identity: ClusterIdentity) throws -> RepositoryInfo {
        let repository = try RepositoryFactory.open(config)
        let info = RepositoryInfo(systemIdentifier: identity.systemIdentifier, walSegmentSize: identity.segmentSize.bytes,
                                  pgVersion: identity.pgVersion, createdAt: PGTimestamp(date: Date()))
        do { try repository.bind(info) } catch let e as StoreError { throw WalctlError.store(e) }
        return try repository.info() ?? info
    }
}
