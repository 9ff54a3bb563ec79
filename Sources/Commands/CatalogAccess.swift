import Foundation
import Logging
import Storage
import Catalog
import WALFormat
import Codec

/// Opens the catalog of the configured repository, rebuilding it from the repository first when it
/// was never completed (a fresh host, a deleted file): the catalog is an index, never the only copy.
public struct CatalogAccess {
    public var config: Configuration
    public var repository: Repository
    public var info: RepositoryInfo
    public var logger: Logger
    /// Where a rebuild shows its progress (`walctl catalog rebuild`, and the rebuild of an
    /// incomplete catalog any reader starts).
    public var progress: ProgressOutput = .off

    public init(config: Configuration, logger: Logger = WalctlLog.silent) throws {
        self.config = config
        self.logger = logger
        repository = try RepositoryFactory.open(config)
        do {
            guard let i = try repository.info() else { throw WalctlError.notInitialised(repository: repository.url) }
            info = i
        } catch let e as StoreError { throw WalctlError.store(e) }
    }

    public var path: String { Self.path(config) }
    /// The configured catalog's path (`catalog`, else its default), without opening anything.
    public static func path(_ config: Configuration) -> String { config[.catalog] ?? Settings.definition("catalog")!.defaultValue! }

    /// The catalog, complete: rebuilt from the repository when needed.
    public func open() throws -> Catalog {
        guard let size = info.segmentSize else { throw WalctlError.notInitialised(repository: repository.url) }
        let catalog = try Catalog(path: path, repositoryURL: repository.url, segmentSize: size, systemIdentifier: info.systemIdentifier)
        if try !catalog.isComplete() {
            logger.info("catalog \(path) is incomplete: rebuilding it from \(repository.url)")
            _ = try rebuild(catalog)
        }
        return catalog
    }

    /// Rebuilds `catalog` from the repository alone.
    public func rebuild(_ catalog: Catalog) throws -> RebuildReport {
        let shown = progress.start("catalog rebuild", unit: .objects)
        defer { shown.finish() }
        return try catalog.rebuild(from: repository, loadHistory: loadHistory, progress: shown)
    }

    /// Reads and parses the archived history file `name` (nil when it is not archived).
    public func loadHistory(_ name: String) throws -> TimelineHistory? {
        guard let file = WALFileName(name), case .history(let tli) = file,
              let meta = try repository.meta(for: file) else { return nil }
        var bytes: [UInt8] = []
        try ObjectReader(repository: repository).read(meta) { bytes.append(contentsOf: $0) }
        return try TimelineHistory(timeline: tli, text: String(decoding: bytes, as: UTF8.self))
    }

    /// Opens the catalog without rebuilding (for `catalog rebuild` itself).
    public func openRaw() throws -> Catalog {
        guard let size = info.segmentSize else { throw WalctlError.notInitialised(repository: repository.url) }
        return try Catalog(path: path, repositoryURL: repository.url, segmentSize: size, systemIdentifier: info.systemIdentifier)
    }
}
