import Foundation

/// Settings of an S3 repository (`repository = s3://bucket/prefix`). Field names follow the setting
/// names (`s3-endpoint` → `endpoint`, ...). Secrets (`keySecret`, `token`) never appear in
/// `description`, `debugDescription` or `dump` output.
public struct S3Settings: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Bucket addressing: `host` (virtual-hosted, `bucket.endpoint/key`) or `path` (`endpoint/bucket/key`).
    public enum URIStyle: String, Sendable, Equatable, CaseIterable {
        case host
        case path
    }

    /// `s3-endpoint`: `https://host[:port]` or, for local emulators only, an explicit `http://host:port`.
    /// A bare host name means https. Nil: `https://s3.<region>.amazonaws.com`.
    public var endpoint: String?
    /// `s3-region`: the signing region.
    public var region: String
    /// `s3-uri-style`.
    public var uriStyle: URIStyle
    /// `s3-ca-file`: CA bundle for TLS verification (verification is always on for https).
    public var caFile: String?
    /// `s3-sse`: value of `x-amz-server-side-encryption` (`AES256`, `aws:kms`), nil for none.
    public var sse: String?
    /// `s3-storage-class`: value of `x-amz-storage-class` (`STANDARD_IA`, ...), nil for the bucket default.
    public var storageClass: String?
    /// `s3-object-lock-mode`: `GOVERNANCE` or `COMPLIANCE` retention sent with every object, nil for none.
    public var objectLockMode: String?
    /// `s3-object-lock-days`: the retention period of every object stored.
    public var objectLockDays: Int?
    /// `s3-key`: access key id.
    public var key: String?
    /// `s3-key-secret`: secret access key.
    public var keySecret: String?
    /// `s3-token`: session token of temporary credentials.
    public var token: String?
    /// `s3-profile`: profile in `~/.aws/credentials` (else `AWS_PROFILE`, else `default`).
    public var profile: String?
    /// `s3-part-size`: objects up to this size are one PUT; larger ones are multipart uploads with parts
    /// of this size (AWS requires at least 5 MiB per part except the last; at most 10,000 parts).
    public var partSize: Int
    /// `s3-upload-threads`: parts of one multipart upload sent in parallel, each on its own connection.
    public var uploadThreads: Int
    /// `s3-max-retries`: retries of one request after transient failures (5xx, 429, SlowDown, reset,
    /// timeout), with exponential backoff and full jitter. 0 disables retrying.
    public var maxRetries: Int
    /// First backoff ceiling in seconds; it doubles per retry up to `retryMaxDelay`.
    public var retryBaseDelay: Double
    /// Largest backoff in seconds.
    public var retryMaxDelay: Double
    /// `s3-connect-timeout`: seconds to connect.
    public var connectTimeout: Double
    /// `s3-stall-timeout`: seconds without any byte moving before a transfer counts as timed out.
    public var stallTimeout: Int
    /// Where temporary AWS credentials (web identity, container, instance metadata) are cached: the
    /// running user's state directory + `/credentials` (set by the command layer); nil: not cached.
    public var credentialCacheDirectory: String?

    public init(endpoint: String? = nil, region: String = "us-east-1", uriStyle: URIStyle = .host,
                caFile: String? = nil, sse: String? = nil, storageClass: String? = nil,
                key: String? = nil, keySecret: String? = nil, token: String? = nil, profile: String? = nil,
                partSize: Int = 16 << 20, uploadThreads: Int = 2, maxRetries: Int = 4,
                retryBaseDelay: Double = 0.2, retryMaxDelay: Double = 10,
                connectTimeout: Double = 10, stallTimeout: Int = 30) {
        self.endpoint = endpoint
        self.region = region
        self.uriStyle = uriStyle
        self.caFile = caFile
        self.sse = sse
        self.storageClass = storageClass
        self.key = key
        self.keySecret = keySecret
        self.token = token
        self.profile = profile
        self.partSize = partSize
        self.uploadThreads = uploadThreads
        self.maxRetries = maxRetries
        self.retryBaseDelay = retryBaseDelay
        self.retryMaxDelay = retryMaxDelay
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
    }

    public var description: String {
        var parts = ["endpoint: \(endpoint ?? "(aws)")", "region: \(region)", "uri-style: \(uriStyle.rawValue)"]
        if let caFile { parts.append("ca-file: \(caFile)") }
        if let sse { parts.append("sse: \(sse)") }
        if let storageClass { parts.append("storage-class: \(storageClass)") }
        if let objectLockMode { parts.append("object-lock: \(objectLockMode) \(objectLockDays ?? 0) days") }
        if let key { parts.append("key: \(key)") }
        if keySecret != nil { parts.append("key-secret: <redacted>") }
        if token != nil { parts.append("token: <redacted>") }
        if let profile { parts.append("profile: \(profile)") }
        parts.append("part-size: \(partSize)")
        parts.append("max-retries: \(maxRetries)")
        return "S3Settings(" + parts.joined(separator: ", ") + ")"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["settings": description]) }

    /// Checks value ranges; throws `.configuration` naming the setting.
    public func validate() throws(StoreError) {
        if region.isEmpty { throw .configuration("s3-region must not be empty") }
        if let m = objectLockMode, m != "GOVERNANCE" && m != "COMPLIANCE" { throw .configuration("s3-object-lock-mode must be governance or compliance") }
        if (objectLockMode == nil) != (objectLockDays == nil) || (objectLockDays ?? 1) < 1 {
            throw .configuration("s3-object-lock-mode and s3-object-lock-days (at least 1) must be set together")
        }
        if partSize < 1 || partSize > 5 << 30 { throw .configuration("s3-part-size must be between 1 byte and 5 GiB") }
        if uploadThreads < 1 || uploadThreads > 64 { throw .configuration("s3-upload-threads must be between 1 and 64") }
        if maxRetries < 0 || maxRetries > 100 { throw .configuration("s3-max-retries must be between 0 and 100") }
        if let e = endpoint, e.contains("://"), !(e.hasPrefix("https://") || e.hasPrefix("http://")) {
            throw .configuration("s3-endpoint must start with https:// (or http:// for a local emulator): \(e)")
        }
    }
}
