import Foundation
import HTTP
import LocalFS
import Logging

/// Temporary credentials from one of the chain's fetching sources, with their expiry.
public struct TemporaryCredentials: Sendable, Equatable {
    public var credentials: S3Credentials
    public var expiration: Date
    /// The role: its ARN (web identity), the instance profile's role name (instance metadata), nil
    /// when the source does not say (container).
    public var role: String?

    public init(credentials: S3Credentials, expiration: Date, role: String?) {
        self.credentials = credentials
        self.expiration = expiration
        self.role = role
    }
}

/// Where credentials came from; `rawValue` is what `walctl config` prints.
public enum CredentialSource: String, Sendable, Equatable, CaseIterable {
    /// `s3-key` + `s3-key-secret` (+ `s3-token`).
    case settings
    /// `s3-profile` / `AWS_PROFILE` / `default` in the shared credentials file.
    case profile
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
    case environment
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: STS AssumeRoleWithWebIdentity (Kubernetes IRSA).
    case webIdentity = "web-identity"
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI` (ECS task roles, EKS Pod Identity).
    case container
    /// EC2 instance metadata (IMDSv2).
    case instanceMetadata = "instance-metadata"
}

/// The AWS credentials chain of one process (docs/operator-guide.md, "S3 credentials"), first match wins:
///
/// 1. `s3-key` + `s3-key-secret` (+ `s3-token`) from the settings;
/// 2. the profile named by `s3-profile`;
/// 3. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
/// 4. the profile named by `AWS_PROFILE` (or `default`, when the file has it);
/// 5. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (token file read at every fetch);
/// 6. container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (against http://169.254.170.2)
///    or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or
///    `AWS_CONTAINER_AUTHORIZATION_TOKEN`;
/// 7. EC2 instance metadata with IMDSv2 tokens, unless `AWS_EC2_METADATA_DISABLED=true`.
///
/// Sources 5-7 give temporary credentials. They are cached in `cacheDirectory` (0600 files, keyed by
/// source and role) and fetched again 5 minutes before they expire, so the once-per-segment commands
/// do not call STS or the metadata service for every segment. A long-running process refreshes
/// them the same way (`current()`).
///
/// Errors are `StoreError.credentials` naming the source, never a secret.
public final class AWSCredentialProvider: @unchecked Sendable {
    /// The credentials found and where from.
    public struct Resolved: Sendable, Equatable {
        public var credentials: S3Credentials
        public var source: CredentialSource
        /// The profile name and file, the role ARN or name, the container URI.
        public var detail: String?
        /// Expiry of temporary credentials (nil: static).
        public var expiration: Date?
        /// True when they were read from the cache (no request was sent).
        public var fromCache: Bool

        /// `web-identity (role arn:aws:iam::1:role/x, cached until 2026-11-30T20:00:00Z)`: no secret.
        public var summary: String {
            var parts: [String] = []
            if let detail { parts.append(detail) }
            if let expiration { parts.append("\(fromCache ? "cached" : "fetched now"), valid until \(AWSTime.format(expiration))") }
            return source.rawValue + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
        }
    }

    /// Temporary credentials are fetched again this many seconds before they expire.
    public static let refreshMargin: TimeInterval = 300

    /// True when credentials expiring at `expiration` must be fetched again at `now`.
    public static func needsRefresh(expiration: Date, now: Date) -> Bool {
        now.timeIntervalSince1970 >= expiration.timeIntervalSince1970 - refreshMargin
    }

    public let settings: S3Settings
    public let environment: [String: String]
    /// Where temporary credentials are cached; nil: not cached.
    public let cacheDirectory: String?
    /// Receives refresh failures (the old credentials are used while they are still valid).
    public var logger: Logger?
    /// The clock (tests move it).
    var now: @Sendable () -> Date = { Date() }

    private let lock = NSLock()
    private var resolved: Resolved?
    private var fetcher: TemporarySourceFetcher?
    /// When this process last fetched (or read from the cache) temporary credentials.
    private var fetchedAt: Date?
    /// Credentials due for refresh but not expired are fetched again at most this often by one
    /// process (a source that hands out credentials living under 5 minutes is not asked per request).
    static let minimumRefreshInterval: TimeInterval = 60

    public init(settings: S3Settings, environment: [String: String], cacheDirectory: String?) {
        self.settings = settings
        self.environment = environment
        self.cacheDirectory = cacheDirectory
    }

    /// Finds credentials (once; later calls return the same answer, refreshed when due).
    public func resolve() throws(StoreError) -> Resolved {
        lock.lock()
        defer { lock.unlock() }
        let at = now()
        if let resolved {
            guard let exp = resolved.expiration else { return resolved }
            if !Self.needsRefresh(expiration: exp, now: at) { return resolved }
            if at < exp, let f = fetchedAt, at.timeIntervalSince(f) < Self.minimumRefreshInterval { return resolved }
        }
        if let fetcher {
            let r: Resolved
            do { r = try fetch(fetcher) } catch {
                if resolved != nil { fetchedAt = at }  // keep the current ones; ask again in a minute
                throw error
            }
            resolved = r
            fetchedAt = at
            return r
        }
        if let (c, source, detail) = try staticCredentials() {
            let r = Resolved(credentials: c, source: source, detail: detail, expiration: nil, fromCache: false)
            resolved = r
            return r
        }
        var tried: [String] = []
        for f in temporarySources(tried: &tried) {
            fetcher = f
            let r = try fetch(f)
            resolved = r
            fetchedAt = at
            return r
        }
        let file = credentialsFile
        throw .credentials(source: "chain", message: "no AWS credentials found: set s3-key and s3-key-secret, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            + "a profile (s3-profile / AWS_PROFILE) in \(file), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or container credentials; "
            + tried.joined(separator: "; "))
    }

    /// The credentials to sign the next request with: temporary ones are fetched again when due.
    /// When that fails the current ones are kept (a warning is logged; the server refuses them once
    /// they have expired, and that error is reported).
    public func current() -> S3Credentials? {
        lock.lock()
        let r = resolved
        lock.unlock()
        guard let r else { return try? resolve().credentials }
        guard r.expiration != nil else { return r.credentials }
        let exp = r.expiration!
        do { return try resolve().credentials } catch {
            logger?.warning("AWS credentials could not be refreshed; using the current ones until they expire", metadata: [
                "source": "\(r.source.rawValue)", "error": "\(error)", "expires": "\(AWSTime.format(exp))",
            ])
            return r.credentials
        }
    }

    // MARK: static sources

    var credentialsFile: String {
        nonEmpty(environment["AWS_SHARED_CREDENTIALS_FILE"])
            ?? (nonEmpty(environment["HOME"]) ?? NSHomeDirectory()) + "/.aws/credentials"
    }

    func nonEmpty(_ s: String?) -> String? { (s?.isEmpty ?? true) ? nil : s }

    /// Sources 1-4; nil when none applies.
    func staticCredentials() throws(StoreError) -> (S3Credentials, CredentialSource, String?)? {
        if let key = nonEmpty(settings.key) {
            guard let secret = nonEmpty(settings.keySecret) else {
                throw .configuration("s3-key is set but s3-key-secret is missing")
            }
            return (S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: nonEmpty(settings.token)), .settings, "s3-key \(key)")
        }
        if settings.keySecret != nil && settings.key == nil {
            throw .configuration("s3-key-secret is set but s3-key is missing")
        }
        let file = credentialsFile
        if let profile = nonEmpty(settings.profile) {
            return (try S3Credentials.fromProfile(profile, file: file, required: true)!, .profile, "profile \(profile) in \(file)")
        }
        if let key = nonEmpty(environment["AWS_ACCESS_KEY_ID"]) {
            guard let secret = nonEmpty(environment["AWS_SECRET_ACCESS_KEY"]) else {
                throw .configuration("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is missing")
            }
            return (S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: nonEmpty(environment["AWS_SESSION_TOKEN"])),
                    .environment, "AWS_ACCESS_KEY_ID \(key)")
        }
        let profile = nonEmpty(environment["AWS_PROFILE"])
        if let c = try S3Credentials.fromProfile(profile ?? "default", file: file, required: profile != nil) {
            return (c, .profile, "profile \(profile ?? "default") in \(file)")
        }
        return nil
    }

    // MARK: temporary sources

    /// Sources 5-7 that the environment enables, in order; `tried` says why the others do not apply.
    func temporarySources(tried: inout [String]) -> [TemporarySourceFetcher] {
        var out: [TemporarySourceFetcher] = []
        let tokenFile = nonEmpty(environment["AWS_WEB_IDENTITY_TOKEN_FILE"])
        let roleARN = nonEmpty(environment["AWS_ROLE_ARN"])
        if let tokenFile, let roleARN {
            out.append(.webIdentity(WebIdentitySource(tokenFile: tokenFile, roleARN: roleARN,
                                                      sessionName: nonEmpty(environment["AWS_ROLE_SESSION_NAME"]),
                                                      region: settings.region, environment: environment, caFile: settings.caFile)))
        } else if tokenFile != nil || roleARN != nil {
            tried.append("web identity needs both AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN")
        }
        if nonEmpty(environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]) != nil || nonEmpty(environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"]) != nil {
            out.append(.container(ContainerSource(environment: environment)))
        }
        if (environment["AWS_EC2_METADATA_DISABLED"] ?? "").lowercased() == "true" {
            tried.append("instance metadata disabled by AWS_EC2_METADATA_DISABLED")
        } else {
            out.append(.instanceMetadata(InstanceMetadataSource(endpoint: nonEmpty(environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"]) ?? InstanceMetadataSource.defaultEndpoint)))
        }
        return out
    }

    /// The cached credentials of `f` when still fresh, else fetched ones (then cached).
    func fetch(_ f: TemporarySourceFetcher) throws(StoreError) -> Resolved {
        let cache = cacheDirectory.map { CredentialCache(directory: $0) }
        let key = f.cacheKey
        let at = now()
        if let cache, let t = cache.load(key: key, source: f.source), !Self.needsRefresh(expiration: t.expiration, now: at) {
            return Resolved(credentials: t.credentials, source: f.source, detail: f.detail(role: t.role), expiration: t.expiration, fromCache: true)
        }
        let t = try f.fetch(now: at)
        cache?.store(key: key, source: f.source, t)
        return Resolved(credentials: t.credentials, source: f.source, detail: f.detail(role: t.role), expiration: t.expiration, fromCache: false)
    }
}

/// One fetching source of the chain.
enum TemporarySourceFetcher {
    case webIdentity(WebIdentitySource)
    case container(ContainerSource)
    case instanceMetadata(InstanceMetadataSource)

    var source: CredentialSource {
        switch self {
        case .webIdentity: return .webIdentity
        case .container: return .container
        case .instanceMetadata: return .instanceMetadata
        }
    }

    /// Source + role (+ where it is asked): the cache entry's name.
    var cacheKey: String {
        switch self {
        case .webIdentity(let s): return "web-identity \(s.roleARN) \(s.tokenFile)"
        case .container(let s): return "container \((try? s.url()) ?? "?")"
        case .instanceMetadata(let s): return "instance-metadata \(s.endpoint)"
        }
    }

    func detail(role: String?) -> String? {
        switch self {
        case .webIdentity(let s): return "role \(s.roleARN)"
        case .container(let s): return ((try? s.url()) ?? "?") + (role.map { ", role \($0)" } ?? "")
        case .instanceMetadata: return role.map { "role \($0)" }
        }
    }

    func fetch(now: Date) throws(StoreError) -> TemporaryCredentials {
        switch self {
        case .webIdentity(let s): return try s.fetch(now: now)
        case .container(let s): return try s.fetch()
        case .instanceMetadata(let s): return try s.fetch()
        }
    }
}

// MARK: - HTTP for the credential sources

enum AWSHTTP {
    /// One request, retried once more than `retries` times on transport failures and 5xx.
    static func send(method: String, url: String, headers: [(String, String)], body: [UInt8]?, options: HTTPOptions,
                     retries: Int) throws(HTTPError) -> HTTPResponse {
        var last: HTTPError = .setup("no attempt made")
        for attempt in 0...retries {
            if attempt > 0 { usleep(useconds_t(100_000 * attempt)) }
            do throws(HTTPError) {
                let client = try HTTPClient(options: options)
                let r: HTTPResponse
                if let body {
                    let result: Result<HTTPResponse, HTTPError> = body.withUnsafeBytes { b in
                        do throws(HTTPError) {
                            return .success(try client.perform(HTTPRequest(method: method, url: url, headers: headers.map { (name: $0.0, value: $0.1) }, body: .bytes(b))))
                        } catch { return .failure(error) }
                    }
                    r = try result.get()
                } else {
                    r = try client.perform(HTTPRequest(method: method, url: url, headers: headers.map { (name: $0.0, value: $0.1) }, body: nil))
                }
                if r.status >= 500 && attempt < retries { continue }
                return r
            } catch {
                last = error
                if case .transport = error { continue }
                throw error
            }
        }
        throw last
    }

    static func formEncode(_ pairs: [(String, String)]) -> String {
        pairs.map { SigV4.encode($0.0, keepSlash: false) + "=" + SigV4.encode($0.1, keepSlash: false) }.joined(separator: "&")
    }
}

/// ISO 8601 times as AWS writes them (`2026-11-30T20:00:00Z`, with or without fractional seconds).
public enum AWSTime {
    public static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return d }
        // `2026-11-30T20:00:00+00:00` is internet date time too; a bare `...T20:00:00` is UTC.
        return f.date(from: s + "Z")
    }

    public static func format(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }
}

/// The JSON credentials document of the container and instance metadata endpoints.
struct CredentialsDocument: Decodable {
    var AccessKeyId: String?
    var SecretAccessKey: String?
    var Token: String?
    var Expiration: String?
    var Code: String?
    var Message: String?

    func credentials(source: String, role: String?) throws(StoreError) -> TemporaryCredentials {
        if let code = Code, code != "Success" {
            throw .credentials(source: source, message: "answered \(code)\(Message.map { ": " + $0 } ?? "")")
        }
        guard let k = AccessKeyId, !k.isEmpty, let s = SecretAccessKey, !s.isEmpty, let t = Token, !t.isEmpty,
              let e = Expiration, let exp = AWSTime.parse(e) else {
            throw .credentials(source: source, message: "answer lacks AccessKeyId, SecretAccessKey, Token or a valid Expiration")
        }
        return TemporaryCredentials(credentials: S3Credentials(accessKeyID: k, secretAccessKey: s, sessionToken: t), expiration: exp, role: role)
    }

    static func decode(_ body: [UInt8], source: String, role: String?) throws(StoreError) -> TemporaryCredentials {
        let doc: CredentialsDocument
        do { doc = try JSONDecoder().decode(CredentialsDocument.self, from: Data(body)) } catch {
            throw .credentials(source: source, message: "answer is not a JSON credentials document")
        }
        return try doc.credentials(source: source, role: role)
    }
}

/// STS AssumeRoleWithWebIdentity with the token in `tokenFile` (read at every fetch: Kubernetes
/// rotates it). The request is not signed (the token is the proof).
struct WebIdentitySource {
    var tokenFile: String
    var roleARN: String
    var sessionName: String?
    var region: String
    var environment: [String: String]
    var caFile: String?

    var name: String { "web-identity (role \(roleARN))" }

    /// The form body of the request.
    func requestBody(token: String, sessionName: String) -> String {
        AWSHTTP.formEncode([("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
                            ("RoleSessionName", sessionName), ("WebIdentityToken", token)])
    }

    func fetch(now: Date) throws(StoreError) -> TemporaryCredentials {
        let endpoint = try AWSEndpoints.url(service: "sts", region: region, environment: environment)
        let bytes: [UInt8]?
        do { bytes = try LocalFS.readFile(tokenFile, limit: 1 << 16, followSymlinks: true) } catch {
            throw .credentials(source: name, message: "cannot read AWS_WEB_IDENTITY_TOKEN_FILE \(tokenFile): \(error)")
        }
        guard let bytes else { throw .credentials(source: name, message: "AWS_WEB_IDENTITY_TOKEN_FILE \(tokenFile) does not exist") }
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw .credentials(source: name, message: "AWS_WEB_IDENTITY_TOKEN_FILE \(tokenFile) is empty") }
        let session = sessionName ?? "walctl-\(Int(now.timeIntervalSince1970))"
        let body = Array(requestBody(token: token, sessionName: session).utf8)
        let r: HTTPResponse
        do {
            r = try AWSHTTP.send(method: "POST", url: endpoint + "/", headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "application/xml")],
                                 body: body, options: HTTPOptions(connectTimeout: 5, stallTimeout: 10, requestTimeout: 20, caFile: caFile), retries: 1)
        } catch {
            throw .credentials(source: name, message: "STS \(endpoint) unreachable: \(error)")
        }
        return try Self.parse(r.body, status: r.status, source: name, roleARN: roleARN)
    }

    /// The answer of AssumeRoleWithWebIdentity (XML).
    static func parse(_ body: [UInt8], status: Int, source: String, roleARN: String) throws(StoreError) -> TemporaryCredentials {
        let xml = String(decoding: body, as: UTF8.self)
        guard status == 200 else {
            let code = S3XML.value(xml, "Code") ?? "HTTP\(status)"
            let message = S3XML.value(xml, "Message").map { ": " + $0 } ?? ""
            throw .credentials(source: source, message: "STS AssumeRoleWithWebIdentity answered \(status) \(code)\(message)")
        }
        guard let block = S3XML.blocks(xml[...], "Credentials").first,
              let k = S3XML.value(block, "AccessKeyId"), let s = S3XML.value(block, "SecretAccessKey"),
              let t = S3XML.value(block, "SessionToken"), let e = S3XML.value(block, "Expiration"), let exp = AWSTime.parse(e) else {
            throw .credentials(source: source, message: "STS answer lacks Credentials (AccessKeyId, SecretAccessKey, SessionToken, Expiration)")
        }
        return TemporaryCredentials(credentials: S3Credentials(accessKeyID: k, secretAccessKey: s, sessionToken: t), expiration: exp, role: roleARN)
    }
}

/// Container credentials (ECS task roles, EKS Pod Identity), as the AWS SDKs read them.
struct ContainerSource {
    var environment: [String: String]
    static let ecsHost = "169.254.170.2"
    /// Hosts an http:// FULL_URI may name besides loopback ones: ECS and EKS Pod Identity agents.
    static let linkLocalHosts: Set<String> = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"]

    var name: String { "container credentials" }

    /// RELATIVE_URI against http://169.254.170.2, else FULL_URI (https, or http to a loopback or
    /// ECS/EKS link-local host).
    func url() throws(StoreError) -> String {
        if let rel = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !rel.isEmpty {
            return "http://\(Self.ecsHost)" + (rel.hasPrefix("/") ? rel : "/" + rel)
        }
        let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] ?? ""
        guard let host = AWSEndpoints.hostOf(full) else {
            throw .credentials(source: name, message: "AWS_CONTAINER_CREDENTIALS_FULL_URI must be an http(s):// URL: \(full)")
        }
        if full.lowercased().hasPrefix("http://") && !AWSEndpoints.isLoopback(host) && !Self.linkLocalHosts.contains(host) {
            throw .credentials(source: name, message: "AWS_CONTAINER_CREDENTIALS_FULL_URI \(full): http:// is allowed only to a loopback host or the ECS/EKS agent (169.254.170.2, 169.254.170.23, fd00:ec2::23); use https://")
        }
        return full
    }

    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read at every fetch), else `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    func authorization() throws(StoreError) -> String? {
        var token: String?
        if let file = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], !file.isEmpty {
            let bytes: [UInt8]?
            do { bytes = try LocalFS.readFile(file, limit: 1 << 16, followSymlinks: true) } catch {
                throw .credentials(source: name, message: "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(file): \(error)")
            }
            guard let bytes else { throw .credentials(source: name, message: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(file) does not exist") }
            token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let t = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"], !t.isEmpty {
            token = t
        }
        if let t = token, t.contains("\r") || t.contains("\n") {
            throw .credentials(source: name, message: "the container authorization token contains a line break")
        }
        return token
    }

    func fetch() throws(StoreError) -> TemporaryCredentials {
        let url = try url()
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let auth = try authorization() { headers.append(("Authorization", auth)) }
        let r: HTTPResponse
        do {
            r = try AWSHTTP.send(method: "GET", url: url, headers: headers, body: nil,
                                 options: HTTPOptions(connectTimeout: 2, stallTimeout: 5, requestTimeout: 5), retries: 1)
        } catch {
            throw .credentials(source: name, message: "\(url) unreachable: \(error)")
        }
        guard r.status == 200 else {
            throw .credentials(source: name, message: "\(url) answered HTTP \(r.status)")
        }
        return try CredentialsDocument.decode(r.body, source: name + " (\(url))", role: nil)
    }
}

/// EC2 instance metadata, IMDSv2 only: a session token (PUT /latest/api/token), then the role name
/// and its credentials. Short timeouts and one retry, so a host outside EC2 fails within seconds.
struct InstanceMetadataSource {
    static let defaultEndpoint = "http://169.254.169.254"
    var endpoint: String
    var name: String { "instance-metadata (\(endpoint))" }
    static let options = HTTPOptions(connectTimeout: 1, stallTimeout: 2, requestTimeout: 2)
    static let credentialsPath = "/latest/meta-data/iam/security-credentials/"

    func fetch() throws(StoreError) -> TemporaryCredentials {
        var base = endpoint
        while base.hasSuffix("/") { base.removeLast() }
        func get(_ path: String, _ headers: [(String, String)], method: String = "GET") throws(StoreError) -> String {
            let r: HTTPResponse
            do { r = try AWSHTTP.send(method: method, url: base + path, headers: headers, body: method == "PUT" ? [] : nil, options: Self.options, retries: 1) } catch {
                throw .credentials(source: name, message: "\(method) \(path) failed: \(error) (not on EC2? set AWS_EC2_METADATA_DISABLED=true to skip this source)")
            }
            guard r.status == 200 else { throw .credentials(source: name, message: "\(method) \(path) answered HTTP \(r.status)") }
            return String(decoding: r.body, as: UTF8.self)
        }
        let token = try get("/latest/api/token", [("X-aws-ec2-metadata-token-ttl-seconds", "21600")], method: "PUT")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains("\n"), !token.contains("\r") else {
            throw .credentials(source: name, message: "IMDSv2 token answer is empty or malformed")
        }
        let auth = [("X-aws-ec2-metadata-token", token)]
        let role = try get(Self.credentialsPath, auth).split(whereSeparator: \.isNewline).first.map(String.init)?
            .trimmingCharacters(in: .whitespaces) ?? ""
        guard !role.isEmpty, !role.contains("/") else {
            throw .credentials(source: name, message: "the instance has no IAM role (instance profile)")
        }
        let doc = try get(Self.credentialsPath + role, auth)
        return try CredentialsDocument.decode(Array(doc.utf8), source: name, role: role)
    }
}

// MARK: - The cache

/// Temporary credentials on disk: `<directory>/aws-<hash of source + role>`, a 0600 JSON file of the
/// running user's in a 0700 directory, written atomically through LocalFS and never read through a
/// symbolic link. One that cannot be read, is not ours and private, is corrupt, belongs to another
/// source or role, or is due for refresh is ignored (and rewritten after the next fetch).
struct CredentialCache {
    var directory: String

    struct Record: Codable {
        var version: Int
        var key: String
        var source: String
        var role: String?
        var accessKeyId: String
        var secretAccessKey: String
        var sessionToken: String?
        var expiration: Double
    }

    func path(key: String) -> String { directory + "/aws-" + String(Digest.sha256Hex(key).prefix(32)) }

    func load(key: String, source: CredentialSource) -> TemporaryCredentials? {
        let p = path(key: key)
        guard let opened = try? LocalFS.openRead(p) else { return nil }
        close(opened.fd)
        guard opened.status.st_uid == geteuid(), opened.status.st_mode & 0o077 == 0,
              let bytes = try? LocalFS.readFile(p, limit: 1 << 16),
              let r = try? JSONDecoder().decode(Record.self, from: Data(bytes)),
              r.version == 1, r.key == key, r.source == source.rawValue, !r.accessKeyId.isEmpty, !r.secretAccessKey.isEmpty else { return nil }
        return TemporaryCredentials(credentials: S3Credentials(accessKeyID: r.accessKeyId, secretAccessKey: r.secretAccessKey, sessionToken: r.sessionToken),
                                    expiration: Date(timeIntervalSince1970: r.expiration), role: r.role)
    }

    /// Best effort: a cache that cannot be written only costs a fetch next time.
    func store(key: String, source: CredentialSource, _ t: TemporaryCredentials) {
        let r = Record(version: 1, key: key, source: source.rawValue, role: t.role, accessKeyId: t.credentials.accessKeyID,
                       secretAccessKey: t.credentials.secretAccessKey, sessionToken: t.credentials.sessionToken,
                       expiration: t.expiration.timeIntervalSince1970)
        guard let data = try? JSONEncoder().encode(r) else { return }
        do {
            try LocalFS.makePrivateDirectory(directory, what: "credentials cache directory")
            try LocalFS.writeFile(path(key: key), Array(data), mode: 0o600, durability: .none)
        } catch {}
    }
}
