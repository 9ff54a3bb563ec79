import Foundation
import HTTP
import Logging

/// A repository in an S3 bucket (AWS S3 or a compatible store: MinIO, Ceph RGW, moto), over libcurl.
///
/// - Signing: AWS Signature V4 with the SHA-256 of every body signed (`x-amz-content-sha256`), so a
///   body corrupted in flight is rejected by the server; session tokens are sent and signed.
/// - Connections: a small pool of HTTP clients, each one libcurl handle that keeps its connection
///   (and TLS session) across requests; multipart parts use one client per upload thread.
/// - Retries: 5xx, 429, 503 SlowDown, 408, `RequestTimeout`, connection resets, timeouts and short
///   bodies are retried up to `S3Settings.maxRetries` times with exponential backoff and full
///   jitter; then the last error is thrown (`StoreError.isTransient` is true for it). Other 4xx
///   answers fail at once with the bucket and key in the error, never a secret.
/// - Reads (`read(key:into:)`): see that method for how a body cut off mid-way is resumed so the
///   sink never sees a byte twice or a gap.
///
/// Thread-safe: every method may be called from several threads at once.
public final class S3Store: ObjectStore {
    /// The bucket name.
    public let bucket: String
    /// Key prefix inside the bucket, empty or ending in `/`.
    public let prefix: String
    public let settings: S3Settings
    /// Receives retry, backoff and slow-request warnings and (debug) each request; never given
    /// secrets. `RepositoryFactory` sets it from `log-level`.
    public var logger: Logger? { didSet { credentialProvider?.logger = logger } }
    /// A request with a small answer (everything but streamed bodies) taking longer than this many
    /// seconds is logged as a warning (a slow or overloaded endpoint, before it turns into timeouts).
    public var slowRequestWarning: Double = 10

    /// The chain that supplied the credentials (nil: given explicitly); temporary ones are
    /// refreshed from it before they expire.
    public let credentialProvider: AWSCredentialProvider?
    private let fixedCredentials: S3Credentials
    /// The credentials the next request is signed with.
    var credentials: S3Credentials { credentialProvider?.current() ?? fixedCredentials }
    let scheme: String
    let hostHeader: String
    let pool: ClientPool
    /// Page size of ListObjectsV2 requests (nil: the server's default of 1000). Tests lower it.
    var listMaxKeys: Int?

    public var location: String {
        prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix.dropLast())"
    }

    /// Opens the store of a repository URL `s3://bucket[/prefix]`.
    ///
    /// Credentials are resolved now (`AWSCredentialProvider`: settings, environment, profile, web
    /// identity, container, instance metadata; temporary ones cached in `settings.credentialCacheDirectory`).
    public static func make(url: String, settings: S3Settings,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) -> S3Store {
        guard url.hasPrefix("s3://") else { throw .configuration("not an S3 repository URL (s3://bucket/prefix): \(url)") }
        let rest = url.dropFirst(5)
        let slash = rest.firstIndex(of: "/")
        let bucket = String(slash.map { rest[..<$0] } ?? rest)
        let prefix = slash.map { String(rest[rest.index(after: $0)...]) } ?? ""
        return try make(bucket: bucket, prefix: prefix, settings: settings, environment: environment)
    }

    /// Opens the store for `bucket` with keys under `prefix` (leading and trailing `/` ignored).
    public static func make(bucket: String, prefix: String, settings: S3Settings,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) -> S3Store {
        let provider = AWSCredentialProvider(settings: settings, environment: environment, cacheDirectory: settings.credentialCacheDirectory)
        let credentials = try provider.resolve().credentials
        return try S3Store(bucket: bucket, prefix: prefix, settings: settings, credentials: credentials, provider: provider)
    }

    /// Opens the store with explicit credentials (or those of `provider`, refreshed when due).
    public init(bucket: String, prefix: String, settings: S3Settings, credentials: S3Credentials,
                provider: AWSCredentialProvider? = nil) throws(StoreError) {
        try settings.validate()
        guard S3Store.isValidBucket(bucket) else {
            throw .configuration("invalid S3 bucket name '\(bucket)' (3-63 characters: a-z 0-9 . -)")
        }
        var p = prefix
        while p.hasPrefix("/") { p.removeFirst() }
        while p.hasSuffix("/") { p.removeLast() }
        self.bucket = bucket
        self.prefix = p.isEmpty ? "" : p + "/"
        self.settings = settings
        fixedCredentials = credentials
        credentialProvider = provider

        var endpoint = settings.endpoint ?? "https://s3.\(settings.region).amazonaws.com"
        if !endpoint.contains("://") { endpoint = "https://" + endpoint }
        let schemeEnd = endpoint.range(of: "://")!
        scheme = String(endpoint[..<schemeEnd.lowerBound]).lowercased()
        var authority = String(endpoint[schemeEnd.upperBound...])
        if let s = authority.firstIndex(of: "/") { authority = String(authority[..<s]) }
        guard !authority.isEmpty, scheme == "https" || scheme == "http" else {
            throw .configuration("s3-endpoint must be https://host[:port] (or http:// for a local emulator): \(endpoint)")
        }
        // Drop a default port so the signed Host header equals what any client would send.
        if scheme == "https", authority.hasSuffix(":443") { authority.removeLast(4) }
        if scheme == "http", authority.hasSuffix(":80") { authority.removeLast(3) }
        hostHeader = settings.uriStyle == .host ? "\(bucket).\(authority)" : authority
        pool = ClientPool(options: HTTPOptions(connectTimeout: settings.connectTimeout, stallTimeout: settings.stallTimeout,
                                               caFile: settings.caFile, verifyTLS: true),
                          keep: settings.uploadThreads + 2)
    }

    static func isValidBucket(_ b: String) -> Bool {
        guard (3...63).contains(b.utf8.count) else { return false }
        return b.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 95 }
    }

    /// The key inside the bucket for a repository key.
    func objectKey(_ key: String) -> String { prefix + key }

    // MARK: ObjectStore

    public func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter {
        S3ObjectWriter(store: self, key: key, options: options)
    }

    /// Streams the object to `sink`. Throws `.notFound` when the key does not exist.
    ///
    /// Exactly-once delivery: every byte reaches `sink` once, in order. When the body is cut off
    /// (reset, timeout, truncation), the GET is sent again for the remaining bytes only, with
    /// `Range: bytes=<delivered>-` and `If-Match: <ETag of the first answer>`, so the rest comes from
    /// the same object version; the total is checked against the first `Content-Length`. If the
    /// object changed meanwhile, or retries run out, `read` throws: the bytes the sink already got
    /// are then a prefix of the object and the caller must discard them (as with any `read` that
    /// throws; archive-get writes to a temporary file and renames only after success and checksum).
    public func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let full = objectKey(key)
        try withoutActuallyEscaping(sink) { sink in
            var delivered: Int64 = 0
            var expected: Int64?
            var etag: String?
            var lastError: StoreError = .transport(message: "no attempt made", key: full)
            for attempt in 0...settings.maxRetries {
                if attempt > 0 { backoff(attempt: attempt, after: lastError) }
                var headers: [(String, String)] = []
                let resuming = delivered > 0
                if resuming, let etag {
                    headers.append(("range", "bytes=\(delivered)-"))
                    headers.append(("if-match", etag))
                }
                var skip: Int64 = 0
                let call = Call(method: "GET", key: full, headers: headers)
                let response: HTTPResponse
                do throws(HTTPError) {
                    response = try pool.with { client throws(HTTPError) in
                        try self.perform(call, client: client) { head in
                            guard (200..<300).contains(head.status) else { return nil }
                            if !resuming {
                                etag = head.header("ETag")
                                expected = head.header("Content-Length").flatMap { Int64($0) }
                            } else if head.status == 200 {
                                // The server ignored Range: skip what the sink already has.
                                guard head.header("ETag") == etag else { throw ResumeError.changed }
                                skip = delivered
                            } else if !(head.header("Content-Range")?.hasPrefix("bytes \(delivered)-") ?? false) {
                                throw ResumeError.badRange
                            }
                            return { bytes in
                                var b = bytes
                                if skip > 0 {
                                    let n = Int(min(skip, Int64(b.count)))
                                    skip -= Int64(n)
                                    b = UnsafeRawBufferPointer(rebasing: b[n...])
                                    if b.isEmpty { return }
                                }
                                try sink(b)
                                delivered += Int64(b.count)
                            }
                        }
                    }
                } catch {
                    switch error {
                    case .aborted(let inner):
                        if let r = inner as? ResumeError {
                            throw StoreError.http(status: 412, code: "PreconditionFailed",
                                                  message: r.message, bucket: bucket, key: full)
                        }
                        throw inner
                    case .transport(_, let message) where error.isTransient:
                        lastError = .transport(message: message, key: full)
                        continue
                    default:
                        throw StoreError.transport(message: error.description, key: full)
                    }
                }
                if (200..<300).contains(response.status) {
                    if let expected, delivered != expected {
                        lastError = .transport(message: "body ended after \(delivered) of \(expected) bytes", key: full)
                        continue
                    }
                    return
                }
                let err = httpError(response, key: full)
                if response.status == 404, errorCode(response) != "NoSuchBucket" { throw StoreError.notFound(key: key) }
                if response.status == 412 && resuming {
                    throw StoreError.http(status: 412, code: "PreconditionFailed",
                                          message: ResumeError.changed.message, bucket: bucket, key: full)
                }
                if isRetryable(response) { lastError = err; continue }
                throw err
            }
            throw gaveUp(lastError)
        }
    }

    public func head(key: String) throws(StoreError) -> ObjectInfo? {
        let full = objectKey(key)
        let r = try send(Call(method: "HEAD", key: full), displayKey: full)
        if r.status == 404 { return nil }
        guard (200..<300).contains(r.status) else { throw httpError(r, key: full) }
        guard let size = r.header("Content-Length").flatMap({ Int64($0) }) else {
            throw .http(status: r.status, code: "BadResponse", message: "HEAD answer without Content-Length", bucket: bucket, key: full)
        }
        return ObjectInfo(key: key, size: size, etag: r.header("ETag"))
    }

    /// ListObjectsV2, following `NextContinuationToken` until the listing is complete.
    public func list(prefix keyPrefix: String) throws(StoreError) -> [ObjectInfo] {
        var out: [ObjectInfo] = []
        var token: String?
        let full = objectKey(keyPrefix)
        for _ in 0..<1_000_000 {  // bounded: 10^9 keys at 1000 per page
            var query = [("list-type", "2"), ("prefix", full)]
            if let token { query.append(("continuation-token", token)) }
            if let listMaxKeys { query.append(("max-keys", String(listMaxKeys))) }
            let r = try send(Call(method: "GET", key: nil, query: query), displayKey: full)
            guard r.status == 200 else { throw httpError(r, key: full) }
            let xml = String(decoding: r.body, as: UTF8.self)[...]
            for entry in S3XML.blocks(xml, "Contents") {
                guard let k = S3XML.value(entry, "Key"), k.hasPrefix(prefix),
                      let size = S3XML.value(entry, "Size").flatMap({ Int64($0) }) else { continue }
                out.append(ObjectInfo(key: String(k.dropFirst(prefix.count)), size: size,
                                      etag: S3XML.value(entry, "ETag")))
            }
            guard S3XML.value(xml, "IsTruncated") == "true" else { break }
            guard let next = S3XML.value(xml, "NextContinuationToken"), !next.isEmpty, next != token else {
                throw .http(status: r.status, code: "BadResponse", message: "truncated listing without a continuation token",
                            bucket: bucket, key: full)
            }
            token = next
        }
        out.sort { $0.key < $1.key }
        return out
    }

    /// True when the bucket has S3 Object Lock enabled (GetObjectLockConfiguration), false when it
    /// has no Object Lock configuration.
    public func objectLockEnabled() throws(StoreError) -> Bool {
        let r = try send(Call(method: "GET", key: nil, query: [("object-lock", "")]), displayKey: "?object-lock")
        if r.status == 404 && errorCode(r) == "ObjectLockConfigurationNotFoundError" { return false }
        guard r.status == 200 else { throw httpError(r, key: "?object-lock") }
        return S3XML.value(String(decoding: r.body, as: UTF8.self), "ObjectLockEnabled") == "Enabled"
    }

    public func delete(key: String) throws(StoreError) {
        let full = objectKey(key)
        let r = try send(Call(method: "DELETE", key: full), displayKey: full)
        if (200..<300).contains(r.status) || r.status == 404 && errorCode(r) != "NoSuchBucket" { return }
        throw httpError(r, key: full)
    }

    // MARK: Requests

    /// One S3 request before signing. `key` is the full key in the bucket, nil for the bucket itself.
    struct Call {
        var method: String
        var key: String?
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var body: UnsafeRawBufferPointer? = nil
        /// Hex SHA-256 of `body`; computed when nil.
        var payloadHash: String? = nil
    }

    enum ResumeError: Error {
        case changed, badRange
        var message: String {
            switch self {
            case .changed: return "object changed while it was being read; the partial data must be discarded"
            case .badRange: return "server answered a resumed read with the wrong byte range"
            }
        }
    }

    /// Signs and sends one attempt.
    func perform(_ call: Call, client: HTTPClient,
                 receive: ((HTTPResponseHead) throws -> ((UnsafeRawBufferPointer) throws -> Void)?)? = nil) throws(HTTPError) -> HTTPResponse {
        var path: String
        switch settings.uriStyle {
        case .path: path = "/" + bucket + (call.key.map { "/" + $0 } ?? "")
        case .host: path = "/" + (call.key ?? "")
        }
        path = SigV4.encodePath(path)
        let payloadHash = call.payloadHash ?? call.body.map { Digest.sha256Hex($0) } ?? Digest.emptySHA256
        let amzDate = SigV4.amzDate(Date())
        var headers: [(String, String)] = [("host", hostHeader), ("x-amz-date", amzDate), ("x-amz-content-sha256", payloadHash)]
        let credentials = self.credentials
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        headers += call.headers
        let signer = SigV4(credentials: credentials, region: settings.region, service: "s3")
        let signed = signer.sign(method: call.method, canonicalURI: path, query: call.query, headers: headers,
                                 payloadHash: payloadHash, amzDate: amzDate)
        headers.append(("authorization", signed.authorization))
        let query = SigV4.canonicalQuery(call.query)
        let url = "\(scheme)://\(hostHeader)\(path)\(query.isEmpty ? "" : "?" + query)"
        logger?.debug("S3 \(call.method) \(url)")
        let request = HTTPRequest(method: call.method, url: url,
                                  headers: headers.map { (name: $0.0, value: $0.1) },
                                  body: call.body.map { HTTPBody.bytes($0) })
        return try client.perform(request, receive: receive)
    }

    /// Sends a request whose answer is small, retrying transient failures. Returns the final
    /// response whatever its status (callers map 404, 412, ...); throws when retries ran out or the
    /// transport failed for good.
    func send(_ call: Call, displayKey: String) throws(StoreError) -> HTTPResponse {
        var call = call
        if call.payloadHash == nil { call.payloadHash = call.body.map { Digest.sha256Hex($0) } ?? Digest.emptySHA256 }
        var lastError: StoreError = .transport(message: "no attempt made", key: displayKey)
        for attempt in 0...settings.maxRetries {
            if attempt > 0 { backoff(attempt: attempt, after: lastError) }
            let response: HTTPResponse
            let started = DispatchTime.now().uptimeNanoseconds
            defer {
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                if seconds > slowRequestWarning {
                    logger?.warning("S3 request slow: \(call.method) \(displayKey) took \(String(format: "%.1f", seconds)) s", metadata: [
                        "bucket": "\(bucket)", "attempt": "\(attempt)",
                    ])
                }
            }
            do {
                response = try pool.with { client throws(HTTPError) in try self.perform(call, client: client) }
            } catch {
                if error.isTransient {
                    lastError = .transport(message: error.description, key: displayKey)
                    continue
                }
                throw .transport(message: error.description, key: displayKey)
            }
            if isRetryable(response) {
                lastError = httpError(response, key: displayKey)
                continue
            }
            return response
        }
        throw gaveUp(lastError)
    }

    func errorCode(_ r: HTTPResponse) -> String? {
        guard !r.body.isEmpty else { return nil }
        return S3XML.value(String(decoding: r.body, as: UTF8.self), "Code")
    }

    /// Transient server answers: 5xx, 429, 408, `RequestTimeout`, `ConditionalRequestConflict`
    /// (AWS asks to retry it), and a 200 whose body is an `<Error>` (CompleteMultipartUpload): its
    /// root element, not an `<Error>` inside a DeleteObjects `<DeleteResult>` (a key not deleted).
    func isRetryable(_ r: HTTPResponse) -> Bool {
        if r.status >= 500 || r.status == 429 || r.status == 408 { return true }
        let code = errorCode(r)
        if r.status == 400 && code == "RequestTimeout" { return true }
        if r.status == 409 && code == "ConditionalRequestConflict" { return true }
        if r.status == 200, !r.body.isEmpty, Self.rootIsError(String(decoding: r.body.prefix(512), as: UTF8.self)) { return true }
        return false
    }

    /// True when the first element of `xml` (after the declaration) is `<Error>`.
    static func rootIsError(_ xml: String) -> Bool {
        var rest = xml[...]
        while let lt = rest.firstIndex(of: "<") {
            let tail = rest[lt...]
            if tail.hasPrefix("<?") || tail.hasPrefix("<!") {
                guard let gt = tail.firstIndex(of: ">") else { return false }
                rest = tail[tail.index(after: gt)...]
                continue
            }
            return tail.hasPrefix("<Error>") || tail.hasPrefix("<Error ")
        }
        return false
    }

    /// A `.http` error from an answer, with S3's code and message (never request headers).
    func httpError(_ r: HTTPResponse, key: String) -> StoreError {
        let xml = String(decoding: r.body, as: UTF8.self)
        var code = S3XML.value(xml, "Code") ?? HTTPStatus.name(r.status)
        var message = S3XML.value(xml, "Message") ?? ""
        if r.status == 200 { code = code.isEmpty ? "InternalError" : code }
        if code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" || (r.status == 403 && xml.isEmpty) {
            message += (message.isEmpty ? "" : " ") + "(access key \(credentials.accessKeyID); check the secret, region and clock)"
        }
        return .http(status: r.status, code: code, message: message, bucket: bucket, key: key)
    }

    func gaveUp(_ e: StoreError) -> StoreError {
        let note = "gave up after \(settings.maxRetries + 1) attempts"
        switch e {
        case .http(let s, let c, let m, let b, let k): return .http(status: s, code: c, message: m.isEmpty ? note : m + "; " + note, bucket: b, key: k)
        case .transport(let m, let k): return .transport(message: m + "; " + note, key: k)
        default: return e
        }
    }

    /// Sleeps before retry `attempt` (1-based): uniformly random in [0, min(max, base * 2^(attempt-1))]
    /// ("full jitter"), at least 1 ms; `SlowDown` and 503 double the base.
    func backoff(attempt: Int, after error: StoreError) {
        var base = settings.retryBaseDelay
        if case .http(let s, let c, _, _, _) = error, s == 503 || c == "SlowDown" { base *= 2 }
        let ceiling = min(settings.retryMaxDelay, base * pow(2, Double(attempt - 1)))
        let delay = max(0.001, Double.random(in: 0...max(ceiling, 0.001)))
        logger?.warning("S3 request failed, retrying", metadata: [
            "bucket": "\(bucket)", "error": "\(error)", "attempt": "\(attempt)", "delay_ms": "\(Int(delay * 1000))",
        ])
        usleep(useconds_t(min(delay, 3600) * 1_000_000))
    }
}

/// Reason phrases for errors without a body (HEAD).
enum HTTPStatus {
    static func name(_ s: Int) -> String {
        switch s {
        case 400: return "BadRequest"
        case 403: return "Forbidden"
        case 404: return "NotFound"
        case 405: return "MethodNotAllowed"
        case 409: return "Conflict"
        case 412: return "PreconditionFailed"
        case 416: return "InvalidRange"
        case 429: return "TooManyRequests"
        case 500: return "InternalError"
        case 501: return "NotImplemented"
        case 503: return "ServiceUnavailable"
        default: return "HTTP\(s)"
        }
    }
}

/// Idle HTTP clients (libcurl handles with their open connections) shared by the store's threads.
final class ClientPool: @unchecked Sendable {
    let options: HTTPOptions
    let keep: Int
    private let lock = NSLock()
    private var idle: [HTTPClient] = []

    init(options: HTTPOptions, keep: Int) {
        self.options = options
        self.keep = keep
    }

    /// Runs `body` with a client no other thread uses meanwhile.
    func with<T>(_ body: (HTTPClient) throws(HTTPError) -> T) throws(HTTPError) -> T {
        lock.lock()
        let reused = idle.popLast()
        lock.unlock()
        let client: HTTPClient
        if let reused { client = reused } else { client = try HTTPClient(options: options) }
        defer {
            lock.lock()
            if idle.count < keep { idle.append(client) }
            lock.unlock()
        }
        return try body(client)
    }
}

extension S3Store: BatchDeleting {
    public var deleteBatchLimit: Int { 1000 }

    /// One DeleteObjects request (quiet) naming `objects` (`<Object>...</Object>` elements); the
    /// answer's text (the `<Error>`s of what was not deleted).
    func postDelete(_ objects: [String], display: String) throws(StoreError) -> Substring {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            + objects.joined() + "</Delete>"
        let body = Array(xml.utf8)
        let result: Result<HTTPResponse, StoreError> = body.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> Result<HTTPResponse, StoreError> in
            let sha = Digest.sha256(b)
            let checksum = Data(sha).base64EncodedString()
            do throws(StoreError) {
                return .success(try send(Call(method: "POST", key: nil, query: [("delete", "")],
                                              headers: [("content-type", "application/xml"), ("x-amz-checksum-sha256", checksum),
                                                        ("x-amz-sdk-checksum-algorithm", "SHA256")],
                                              body: b, payloadHash: Digest.hex(sha)), displayKey: display))
            } catch { return .failure(error) }
        }
        let r: HTTPResponse
        switch result { case .success(let x): r = x; case .failure(let e): throw e }
        guard (200..<300).contains(r.status) else { throw httpError(r, key: display) }
        return String(decoding: r.body, as: UTF8.self)[...]
    }

    /// DeleteObjects (`POST /?delete`, quiet mode: the answer lists only the keys not deleted). The
    /// body's SHA-256 goes in `x-amz-checksum-sha256` (S3 requires an integrity header on this call;
    /// Content-MD5 is the older alternative). The request is retried as a whole by `send`.
    public func deleteBatch(_ keys: [String]) throws(StoreError) -> [(key: String, error: StoreError)] {
        guard !keys.isEmpty else { return [] }
        let objects = keys.map { "<Object><Key>" + S3XML.escape(objectKey($0)) + "</Key></Object>" }
        let text = try postDelete(objects, display: objectKey(keys[0]) + (keys.count > 1 ? " (+\(keys.count - 1) more)" : ""))
        var failed: [(key: String, error: StoreError)] = []
        for e in S3XML.blocks(text, "Error") {
            guard let full = S3XML.value(e, "Key") else { continue }
            let code = S3XML.value(e, "Code") ?? "InternalError"
            if code == "NoSuchKey" { continue }
            let key = full.hasPrefix(prefix) ? String(full.dropFirst(prefix.count)) : full
            let status = code == "AccessDenied" ? 403 : 500
            failed.append((key, .http(status: status, code: code, message: S3XML.value(e, "Message") ?? "", bucket: bucket, key: full)))
        }
        return failed
    }
}
