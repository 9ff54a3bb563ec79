import Foundation
import Storage
import Catalog
import WALFormat

/// Records archived files into the local catalog after they are durable in the repository.
struct CatalogRecorder: ArchiveRecorder {
    var path: String

    static func make(config: Configuration, warn: @escaping (String) -> Void) -> ArchiveRecorder? {
        guard let path = config["catalog"] else { return nil }
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
