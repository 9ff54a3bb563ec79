import Foundation
import HTTP

/// AWS KMS over HTTPS: the three calls repository encryption needs (GenerateDataKey at `walctl init`,
/// Decrypt when a repository is opened, Encrypt for `rotate-key`), as JSON 1.1 requests
/// (`X-Amz-Target: TrentService.<Operation>`) signed with SigV4 for service `kms`, with the credentials
/// of the S3 chain (`AWSCredentialProvider`). The endpoint follows `AWSEndpoints` (`AWS_ENDPOINT_URL_KMS`,
/// `AWS_ENDPOINT_URL`, `https://kms.<region>.amazonaws.com`).
///
/// Failures throw `CipherError.key` naming the operation, the key and KMS's error code (never the
/// plaintext or credentials); missing credentials throw the provider's `StoreError.credentials`.
public struct KMSClient: Sendable {
    public let endpoint: String
    public let region: String
    public let provider: AWSCredentialProvider
    public let caFile: String?

    public init(region: String, environment: [String: String], provider: AWSCredentialProvider, caFile: String? = nil) throws(StoreError) {
        endpoint = try AWSEndpoints.url(service: "kms", region: region, environment: environment)
        self.region = region
        self.provider = provider
        self.caFile = caFile
    }

    /// The result of GenerateDataKey: the 32-byte data key and the blob that KMS decrypts back to it.
    public struct DataKey: Sendable {
        public var plaintext: [UInt8]
        public var ciphertextBlob: [UInt8]
        /// The ARN of the key that wrapped it.
        public var keyARN: String
    }

    /// GenerateDataKey with `KeySpec: AES_256`.
    public func generateDataKey(keyID: String) throws -> DataKey {
        let r = try call("GenerateDataKey", keyID: keyID, body: ["KeyId": keyID, "KeySpec": "AES_256"])
        guard let p = r.plaintext, p.count == 32, let c = r.ciphertextBlob, !c.isEmpty else {
            throw CipherError.key("AWS KMS GenerateDataKey with key \(keyID): the answer lacks a 32-byte Plaintext or a CiphertextBlob")
        }
        return DataKey(plaintext: p, ciphertextBlob: c, keyARN: r.keyID ?? keyID)
    }

    /// Decrypt of `ciphertextBlob`, which must have been made by `keyID` (KMS refuses another key).
    public func decrypt(ciphertextBlob: [UInt8], keyID: String) throws -> (plaintext: [UInt8], keyARN: String) {
        let r = try call("Decrypt", keyID: keyID, body: ["KeyId": keyID, "CiphertextBlob": Data(ciphertextBlob).base64EncodedString()])
        guard let p = r.plaintext, !p.isEmpty else { throw CipherError.key("AWS KMS Decrypt with key \(keyID): the answer lacks Plaintext") }
        return (p, r.keyID ?? keyID)
    }

    /// Encrypt of `plaintext` (the data key) under `keyID`.
    public func encrypt(plaintext: [UInt8], keyID: String) throws -> (ciphertextBlob: [UInt8], keyARN: String) {
        let r = try call("Encrypt", keyID: keyID, body: ["KeyId": keyID, "Plaintext": Data(plaintext).base64EncodedString()])
        guard let c = r.ciphertextBlob, !c.isEmpty else { throw CipherError.key("AWS KMS Encrypt with key \(keyID): the answer lacks CiphertextBlob") }
        return (c, r.keyID ?? keyID)
    }

    // MARK: wire format

    /// The fields of a KMS answer walctl reads (base64 fields decoded).
    public struct Answer: Equatable, Sendable {
        public var plaintext: [UInt8]?
        public var ciphertextBlob: [UInt8]?
        public var keyID: String?
    }

    /// A request ready to send: URL, headers (signed) and body.
    public struct Request: Sendable {
        public var url: String
        public var headers: [(String, String)]
        public var body: [UInt8]
    }

    /// The JSON 1.1 request for `operation`, signed at `date` (pure: unit tests check it).
    public static func request(operation: String, body: [String: String], endpoint: String, region: String,
                               credentials: S3Credentials, date: Date) -> Request {
        let json = jsonBody(body)
        var host = AWSEndpoints.hostOf(endpoint) ?? ""
        // The Host header as curl sends it: with the port when one is given.
        let rest = endpoint.drop { $0 != "/" }.dropFirst(2)
        let authority = rest.prefix { $0 != "/" }
        if !authority.isEmpty { host = String(authority) }
        let lower = endpoint.lowercased()
        if lower.hasPrefix("https://"), host.hasSuffix(":443") { host.removeLast(4) }
        if lower.hasPrefix("http://"), host.hasSuffix(":80") { host.removeLast(3) }
        var path = String(rest.dropFirst(authority.count))
        if path.isEmpty { path = "/" }
        let amzDate = SigV4.amzDate(date)
        let payloadHash = json.withUnsafeBytes { Digest.sha256Hex($0) }
        var headers: [(String, String)] = [
            ("host", host), ("x-amz-date", amzDate), ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "TrentService.\(operation)"),
        ]
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        let signed = SigV4(credentials: credentials, region: region, service: "kms")
            .sign(method: "POST", canonicalURI: SigV4.encodePath(path), query: [], headers: headers, payloadHash: payloadHash, amzDate: amzDate)
        headers.append(("authorization", signed.authorization))
        let base = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        return Request(url: path == "/" ? base + "/" : base, headers: headers, body: json)
    }

    /// `{"a":"b",...}` with sorted keys.
    static func jsonBody(_ fields: [String: String]) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Array(data)
    }

    /// Decodes an answer: 200 -> fields; else `CipherError.key` with KMS's `__type` and message.
    public static func parse(status: Int, body: [UInt8], operation: String, keyID: String) throws(CipherError) -> Answer {
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        guard status == 200 else {
            var type = (object?["__type"] as? String) ?? "HTTP\(status)"
            if let hash = type.lastIndex(of: "#") { type = String(type[type.index(after: hash)...]) }
            let message = (object?["message"] as? String) ?? (object?["Message"] as? String)
            throw .key("AWS KMS \(operation) with key \(keyID) refused: \(status) \(type)\(message.map { ": " + $0 } ?? "")")
        }
        guard let object else { throw .key("AWS KMS \(operation) with key \(keyID): the answer is not JSON") }
        func b64(_ name: String) throws(CipherError) -> [UInt8]? {
            guard let s = object[name] as? String else { return nil }
            guard let d = Data(base64Encoded: s) else { throw .key("AWS KMS \(operation) with key \(keyID): \(name) is not base64") }
            return Array(d)
        }
        return Answer(plaintext: try b64("Plaintext"), ciphertextBlob: try b64("CiphertextBlob"), keyID: object["KeyId"] as? String)
    }

    func call(_ operation: String, keyID: String, body: [String: String]) throws -> Answer {
        let credentials = try provider.resolve().credentials
        var last = ""
        for attempt in 0...2 {
            if attempt > 0 { usleep(useconds_t(200_000 * attempt)) }
            let req = Self.request(operation: operation, body: body, endpoint: endpoint, region: region, credentials: credentials, date: Date())
            let r: HTTPResponse
            do {
                r = try AWSHTTP.send(method: "POST", url: req.url, headers: req.headers, body: req.body,
                                     options: HTTPOptions(connectTimeout: 5, stallTimeout: 10, requestTimeout: 30, caFile: caFile), retries: 0)
            } catch {
                last = "\(error)"
                if error.isTransient { continue }
                break
            }
            if r.status >= 500 || r.status == 429 { last = "HTTP \(r.status)"; continue }
            return try Self.parse(status: r.status, body: r.body, operation: operation, keyID: keyID)
        }
        throw CipherError.key("AWS KMS \(operation) with key \(keyID) at \(endpoint) failed: \(last)")
    }
}
