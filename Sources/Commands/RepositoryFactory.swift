import Foundation
import Storage

/// Opens the repository named by the `repository` setting.
public enum RepositoryFactory {
    /// `file:///abs/path` (or a plain absolute path) -> FileStore; `s3://bucket/prefix` -> S3Store.
    public static func open(_ config: Configuration) throws -> Repository {
        let url = try config.require("repository")
        if url.hasPrefix("file://") {
            let path = String(url.dropFirst("file://".count))
            guard path.hasPrefix("/") else {
                throw WalctlError.configuration(.invalidValue(name: "repository", value: url, expected: "file:///absolute/path or s3://bucket/prefix"))
            }
            return Repository(store: FileStore(root: path), url: url)
        }
        if url.hasPrefix("/") {
            return Repository(store: FileStore(root: url), url: "file://" + url)
        }
        if url.hasPrefix("s3://") {
            return Repository(store: try makeS3Store(url: url, config: config), url: url)
        }
        throw WalctlError.configuration(.invalidValue(name: "repository", value: url, expected: "file:///absolute/path or s3://bucket/prefix"))
    }
}
