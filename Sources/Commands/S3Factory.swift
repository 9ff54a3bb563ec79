import Foundation
import Storage

/// Builds the S3 store from `s3://bucket/prefix` and the `s3-*` settings.
func makeS3Store(url: String, config: Configuration) throws -> ObjectStore {
    var s = S3Settings()
    s.endpoint = config["s3-endpoint"]
    if let r = config["s3-region"] { s.region = r }
    if let u = config["s3-uri-style"] {
        guard let style = S3Settings.URIStyle(rawValue: u) else {
            throw WalctlError.configuration(.invalidValue(name: "s3-uri-style", value: u, expected: "host or path"))
        }
        s.uriStyle = style
    }
    s.caFile = config["s3-ca-file"]
    s.sse = config["s3-sse"]
    s.storageClass = config["s3-storage-class"]
    s.key = config["s3-key"]
    s.keySecret = config["s3-key-secret"]
    s.token = config["s3-token"]
    s.profile = config["s3-profile"]
    if let p = try config.integer("s3-part-size") { s.partSize = p }
    if let r = try config.integer("s3-retries") { s.maxRetries = r }
    if let t = try config.integer("s3-upload-threads") { s.uploadThreads = max(1, t) }
    if let t = try config.integer("s3-connect-timeout") { s.connectTimeout = Double(t) }
    if let t = try config.integer("s3-stall-timeout") { s.stallTimeout = t }
    do {
        try s.validate()
        return try S3Store.make(url: url, settings: s)
    } catch {
        throw WalctlError.store(error)
    }
}
