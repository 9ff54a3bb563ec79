import Foundation
import Logging
import Storage

/// Where temporary AWS credentials are cached for this user (the spool's state-directory rule).
func credentialCacheDirectory() -> String { ArchiveSpool.userStateDirectory() + "/credentials" }

/// Builds the S3 store from `s3://bucket/prefix` and the `s3-*` settings (validated at load).
func makeS3Store(url: String, config: Configuration, logger: Logger = WalctlLog.silent) throws -> ObjectStore {
    let s = try s3Settings(config)
    do {
        try s.validate()
        let store = try S3Store.make(url: url, settings: s)
        store.logger = logger
        return store
    } catch {
        throw WalctlError.store(error)
    }
}

/// The `s3-*` settings (also the credentials and region of KMS).
func s3Settings(_ config: Configuration) throws -> S3Settings {
    var s = S3Settings()
    s.endpoint = config[.s3Endpoint]
    if let r = config[.s3Region] { s.region = r }
    if let u = config[.s3URIStyle] {
        guard let style = S3Settings.URIStyle(rawValue: u.lowercased()) else {
            throw WalctlError.configuration(.invalidValue(name: "s3-uri-style", value: u, expected: "host or path", source: config.sources["s3-uri-style"]))
        }
        s.uriStyle = style
    }
    s.caFile = config[.s3CAFile]
    s.sse = config[.s3SSE]
    s.storageClass = config[.s3StorageClass]
    s.objectLockMode = config[.s3ObjectLockMode]?.uppercased()
    s.objectLockDays = try config.int(.s3ObjectLockDays)
    s.key = config[.s3Key]
    s.keySecret = config[.s3KeySecret]
    s.token = config[.s3Token]
    s.profile = config[.s3Profile]
    if let p = try config.int(.s3PartSize) { s.partSize = p }
    if let r = try config.int(.s3Retries) { s.maxRetries = r }
    if let t = try config.int(.s3UploadThreads) { s.uploadThreads = max(1, t) }
    if let t = try config.int(.s3ConnectTimeout) { s.connectTimeout = Double(t) }
    if let t = try config.int(.s3StallTimeout) { s.stallTimeout = t }
    s.credentialCacheDirectory = credentialCacheDirectory()
    return s
}

/// The credentials chain of the configuration (`walctl config` names its source; KMS signs with it).
func credentialProvider(_ config: Configuration, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AWSCredentialProvider {
    let s = try s3Settings(config)
    return AWSCredentialProvider(settings: s, environment: environment, cacheDirectory: s.credentialCacheDirectory)
}

/// The KMS client of `repository-cipher-kms-key` (region `s3-region`, the S3 credentials chain).
func makeKMSClient(_ config: Configuration, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KMSClient {
    let s = try s3Settings(config)
    do {
        return try KMSClient(region: s.region, environment: environment,
                             provider: AWSCredentialProvider(settings: s, environment: environment, cacheDirectory: s.credentialCacheDirectory),
                             caFile: s.caFile)
    } catch { throw WalctlError.store(error) }
}
