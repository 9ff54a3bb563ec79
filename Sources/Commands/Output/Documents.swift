import Catalog
import Foundation

/// The `--json` documents of commands whose result type is not a document by itself (it lacks
/// `formatVersion`, or a command prints several values). docs/json.md lists every document and its
/// keys; a new command adds its struct here (or a `formatVersion` to its own result type), a section
/// to docs/json.md, and a run to Tests/integration/test_json.sh.
public enum JSONDocuments {
    /// `walctl backup list --json`.
    public struct BackupList: Encodable, Sendable {
        public var formatVersion = 1
        public var backups: [BackupRecord]
        public init(backups: [BackupRecord]) { self.backups = backups }
    }

    /// `walctl backup show LABEL --json`: the record and what it is made of (`backup.json`).
    public struct BackupShow: Encodable, Sendable {
        public var formatVersion = 1
        public var backup: BackupRecord
        public var contents: BackupContents
        /// The labels a restore of this backup reads, its full backup first, this backup last.
        public var chain: [String]
        /// Stored bytes of the whole chain (this backup's own are `backup.storedSize`).
        public var chainStoredSize: Int64
        public init(backup: BackupRecord, contents: BackupContents, chain: [BackupRecord] = []) {
            self.backup = backup; self.contents = contents
            let c = chain.isEmpty ? [backup] : chain
            self.chain = c.map(\.label)
            chainStoredSize = c.reduce(0) { $0 + ($1.storedSize ?? 0) }
        }
    }

    /// `walctl catalog find --json`.
    public struct CatalogFind: Encodable, Sendable {
        public var formatVersion = 1
        public var segment: SegmentRecord
        public init(segment: SegmentRecord) { self.segment = segment }
    }

    /// `walctl catalog check --json`.
    public struct CatalogCheck: Encodable, Sendable {
        public var formatVersion = 1
        public var catalogPath: String
        public var repository: String
        /// True when the catalog and the repository agree (exit 0).
        public var clean: Bool
        public var drift: CatalogDrift
        public init(catalogPath: String, repository: String, drift: CatalogDrift) {
            self.catalogPath = catalogPath; self.repository = repository; clean = drift.isClean; self.drift = drift
        }
    }

    /// `walctl catalog rebuild --json`.
    public struct CatalogRebuild: Encodable, Sendable {
        public var formatVersion = 1
        public var catalogPath: String
        public var repository: String
        public var rebuild: RebuildReport
        public init(catalogPath: String, repository: String, rebuild: RebuildReport) {
            self.catalogPath = catalogPath; self.repository = repository; self.rebuild = rebuild
        }
    }
}
