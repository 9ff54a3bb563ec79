import Foundation
import Logging
import Storage

/// Opens the repository named by the `repository` setting.
public enum RepositoryFactory {
    /// `file:///abs/path` (or a plain absolute path) -> FileStore; `s3://bucket/prefix` -> S3Store.
    /// The URL's form was validated at load (`SettingType.repositoryURL`). The S3 store's logger is
    /// `logger`, else one made from `log-level` (so its retries and slow requests are warnings on
    /// stderr whichever command opened it).
    public static func open(_ config: Configuration, logger: Logger? = nil) throws -> Repository {
        let logger = logger ?? WalctlLog.make(level: config.logLevel)
        let url = try config.require(.repository)
        let invalid = WalctlError.configuration(.invalidValue(name: "repository", value: url, expected: SettingType.repositoryURL.allowed,
                                                              source: config.sources["repository"]))
        guard SettingType.repositoryURL.accepts(url) else { throw invalid }
        if url.hasPrefix("file://") {
            return Repository(store: FileStore(root: String(url.dropFirst("file://".count))), url: url)
        }
        if url.hasPrefix("/") {
            return Repository(store: FileStore(root: url), url: "file://" + url)
        }
        if url.hasPrefix("s3://") {
            return Repository(store: try makeS3Store(url: url, config: config, logger: logger), url: url)
        }
        throw invalid
    }
}
