import Foundation
import Storage

/// The archive commands wired from configuration: what `walctl archive-push` and `archive-get` call.
public struct Archiver {
    public var config: Configuration
    public var warn: (String) -> Void

    public init(config: Configuration, warn: @escaping (String) -> Void) {
        self.config = config; self.warn = warn
    }

    /// archive-push of the file at `path`: asynchronous and/or under the safety valve when
    /// configured (docs/async.md), else synchronous.
    public func push(path: String) throws -> PushOutcome {
        if let outcome = try AsyncArchive(config: config, warn: warn).pushIfEnabled(path: path, direct: { try self.pushDirect(path: path) }) {
            return outcome
        }
        return try pushDirect(path: path)
    }

    /// The synchronous archive-push of the file at `path`.
    public func pushDirect(path: String) throws -> PushOutcome {
        let push = try ArchivePush(config: config, repository: try RepositoryFactory.open(config), warn: warn)
        return try push.push(path: path)
    }

    /// archive-get of `fileName` into `targetPath`.
    /// With `restore-prefetch` > 0 the prefetching path (docs/async.md) serves it.
    public func get(fileName: String, targetPath: String) throws -> GetOutcome {
        let retry = try config.integer("archive-get-retry-time") ?? 60
        let fsync = try config.bool("archive-get-fsync")
        let direct = { (repository: Repository) in
            var get = ArchiveGet(repository: repository, retryTime: TimeInterval(retry), warn: self.warn)
            get.fsync = fsync
            return try get.get(fileName: fileName, targetPath: targetPath)
        }
        if let outcome = try PrefetchGet(config: config, warn: warn).getIfEnabled(fileName: fileName, targetPath: targetPath, direct: direct) {
            return outcome
        }
        return try direct(try RepositoryFactory.open(config))
    }
}
