import Foundation
import Logging
import Storage

/// The archive commands wired from configuration: what `walctl archive-push` and `archive-get` call.
public struct Archiver {
    public var config: Configuration
    /// The CLI's logger (`log-level`): passed to the push, the get, the asynchronous path, the
    /// safety valve and the repository; warnings are `.warning`.
    public var logger: Logger

    public init(config: Configuration, logger: Logger = WalctlLog.silent) {
        self.config = config; self.logger = logger
    }

    /// archive-push of the file at `path`: asynchronous and/or under the safety valve when
    /// configured (docs/async.md), else synchronous.
    public func push(path: String) throws -> PushOutcome {
        // Before the asynchronous path and the safety valve: neither may wait for, or let go, a FIFO.
        do { _ = try ArchivePush.checkInput(path: path) } catch { recordFailure(error); throw error }
        if let outcome = try AsyncArchive(config: config, logger: logger).pushIfEnabled(path: path, direct: { try self.pushDirect(path: path) }) {
            return outcome
        }
        return try pushDirect(path: path)
    }

    /// The synchronous archive-push of the file at `path`.
    /// A failure is counted beside the catalog (`PushFailures`, `walctl_archive_push_failures_total`).
    public func pushDirect(path: String) throws -> PushOutcome {
        do {
            let push = try ArchivePush(config: config, repository: try RepositoryFactory.open(config, logger: logger), logger: logger)
            return try push.push(path: path)
        } catch {
            recordFailure(error)
            throw error
        }
    }

    func recordFailure(_ error: Error) {
        PushFailures.record(catalog: CatalogAccess.path(config), code: WalctlError.from(error)?.code ?? "error")
    }

    /// archive-get of `fileName` into `targetPath`.
    /// With `restore-prefetch` > 0 the prefetching path (docs/async.md) serves it.
    public func get(fileName: String, targetPath: String) throws -> GetOutcome {
        let retry = try config.seconds(.archiveGetRetryTime) ?? 60
        let fsync = try config.bool(.archiveGetFsync)
        // PostgreSQL runs restore_command in the data directory: the cluster to match and the
        // recovery plan to honour are found there (ArchiveGet.confirmAbsent).
        let context = ArchiveGet.recoveryContext(directory: FileManager.default.currentDirectoryPath)
        let direct = { (repository: Repository) in
            var get = ArchiveGet(repository: repository, retryTime: retry, logger: self.logger,
                                 clusterDirectory: context.clusterDirectory, planPath: context.planPath)
            get.fsync = fsync
            return try get.get(fileName: fileName, targetPath: targetPath)
        }
        if let outcome = try PrefetchGet(config: config, logger: logger).getIfEnabled(fileName: fileName, targetPath: targetPath, direct: direct) {
            logger.debug("\(fileName): answered by the prefetching path")
            return outcome
        }
        return try direct(try RepositoryFactory.open(config, logger: logger))
    }
}
