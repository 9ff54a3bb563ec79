import Foundation
import Storage
import Catalog
import WALFormat

/// Records archived files into the local catalog after they are durable in the repository.
struct CatalogRecorder: ArchiveRecorder {
    var path: String

    static func make(config: Configuration) -> ArchiveRecorder? {
        guard let path = config[.catalog] else { return nil }
        return CatalogRecorder(path: path)
    }

    func recordArchived(_ meta: ArchivedFileMeta, repository: Repository, info: RepositoryInfo, content: UnsafeRawBufferPointer) throws {
        guard let size = info.segmentSize else { return }
        let catalog = try Catalog(path: path, repositoryURL: repository.url, segmentSize: size, systemIdentifier: info.systemIdentifier)
        try catalog.recordArchived(meta)
        if case .history(let tli)? = WALFileName(meta.name) {
            try catalog.recordHistory(try TimelineHistory(timeline: tli, text: String(decoding: content, as: UTF8.self)))
        }
    }
}

/// Records the safety valve's skips into the local catalog. It needs neither the repository's
/// objects nor its binding (the repository may be the very thing that is down): only the
/// repository's URL from the configuration, and the segment size, which is the skipped segment's
/// own size.
struct SkipCatalogRecorder {
    var path: String
    var repositoryURL: String

    /// The configured catalog, or nil when no catalog or repository is configured.
    init?(config: Configuration) {
        guard let path = config[.catalog], let repository = try? RepositoryFactory.open(config) else { return nil }
        self.path = path
        repositoryURL = repository.url
    }

    /// Records `record` unless the segment is archived. Files other than complete segments are not
    /// recorded (see `Catalog.recordSkipped`).
    func record(_ record: SkipRecord) throws {
        guard case .segment? = WALFileName(record.name) else { return }
        guard let size = UInt64(exactly: record.size).flatMap(WALSegmentSize.init(bytes:)) else {
            throw WalctlError.refused("\(record.name) is \(record.size) bytes, not a WAL segment size: the skip is not in the catalog \(path); `walctl catalog rebuild` restores it from the repository's marker")
        }
        try Catalog(path: path, repositoryURL: repositoryURL, segmentSize: size).recordSkipped(record)
    }
}
