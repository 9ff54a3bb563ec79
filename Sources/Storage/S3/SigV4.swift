import CCrypto
import Foundation

/// SHA-256 and HMAC-SHA-256 from OpenSSL's libcrypto (fenced in `CCrypto`).
///
/// Chosen over a pure-Swift implementation for speed (libcrypto uses the CPU's SHA extensions,
/// about 2 GB/s here) and over swift-crypto for build time; libcurl already loads libcrypto.
public enum Digest {
    static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// A streaming SHA-256 context.
    final class SHA256 {
        private let ctx: OpaquePointer?
        init() { ctx = walctl_sha256_new() }
        deinit { walctl_sha256_free(ctx) }
        func update(_ bytes: UnsafeRawBufferPointer) {
            if bytes.count > 0 { _ = walctl_sha256_update(ctx, bytes.baseAddress, bytes.count) }
        }
        /// The digest of everything fed so far; the context starts over afterwards.
        func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: 32)
            _ = out.withUnsafeMutableBufferPointer { walctl_sha256_final(ctx, $0.baseAddress) }
            return out
        }
    }

    static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String { hex(sha256(bytes)) }
    public static func sha256Hex(_ s: String) -> String {
        var s = s
        return s.withUTF8 { sha256Hex(UnsafeRawBufferPointer($0)) }
    }

    static func hmac(key: [UInt8], _ message: String) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var m = message
        m.withUTF8 { msg in
            key.withUnsafeBytes { k in
                out.withUnsafeMutableBufferPointer { o in
                    _ = walctl_hmac_sha256(k.baseAddress, k.count, msg.baseAddress, msg.count, o.baseAddress)
                }
            }
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// AWS Signature Version 4 (header form) as the AWS General Reference and the S3 API reference
/// describe it: canonical request, string to sign, derived signing key, `Authorization` header.
///
/// Pure logic, no I/O: the store computes the payload hash and passes every header it wants signed.
struct SigV4 {
    /// Access key, secret and optional session token of one signer.
    var credentials: S3Credentials
    var region: String
    var service: String

    /// The result of signing one request; the parts are kept for tests and diagnostics.
    struct Signed {
        var authorization: String
        var signature: String
        var canonicalRequest: String
        var stringToSign: String
        var signedHeaders: String
    }

    /// Signs one request.
    ///
    /// - Parameters:
    ///   - canonicalURI: the path exactly as sent, already percent-encoded (see `encodePath`).
    ///   - query: raw (unencoded) names and values; they are encoded and sorted here.
    ///   - headers: every header to sign, including `host` and `x-amz-date`.
    ///   - payloadHash: hex SHA-256 of the body (or `UNSIGNED-PAYLOAD`).
    ///   - amzDate: `yyyyMMdd'T'HHmmss'Z'`, the same value as the `x-amz-date` header.
    func sign(method: String, canonicalURI: String, query: [(String, String)], headers: [(String, String)],
              payloadHash: String, amzDate: String, separator: String = ",") -> Signed {
        let canonicalQuery = SigV4.canonicalQuery(query)

        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            merged[name.lowercased(), default: []].append(SigV4.trimHeaderValue(value))
        }
        let names = merged.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")

        let canonicalRequest = [method, canonicalURI, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Digest.sha256Hex(canonicalRequest)].joined(separator: "\n")

        var key = Digest.hmac(key: Array(("AWS4" + credentials.secretAccessKey).utf8), day)
        key = Digest.hmac(key: key, region)
        key = Digest.hmac(key: key, service)
        key = Digest.hmac(key: key, "aws4_request")
        let signature = Digest.hex(Digest.hmac(key: key, stringToSign))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope)\(separator)"
            + "SignedHeaders=\(signedHeaders)\(separator)Signature=\(signature)"
        return Signed(authorization: authorization, signature: signature, canonicalRequest: canonicalRequest,
                      stringToSign: stringToSign, signedHeaders: signedHeaders)
    }

    /// Names and values encoded, sorted by name then value, joined as `a=1&b=2`.
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        var pairs: [(String, String)] = []
        for (name, value) in query {
            pairs.append((encode(name, keepSlash: false), encode(value, keepSlash: false)))
        }
        pairs.sort { (a: (String, String), b: (String, String)) -> Bool in a.0 != b.0 ? a.0 < b.0 : a.1 < b.1 }
        var parts: [String] = []
        for (n, v) in pairs { parts.append(n + "=" + v) }
        return parts.joined(separator: "&")
    }

    /// URI-encodes per SigV4: every byte except `A-Z a-z 0-9 - _ . ~` becomes `%XX` (upper-case hex);
    /// `/` is kept when `keepSlash` (object key paths).
    static func encode(_ s: String, keepSlash: Bool) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: "/") where keepSlash:
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// An S3 object path (`/bucket/key` or `/key`), encoded once with `/` kept.
    static func encodePath(_ path: String) -> String { encode(path, keepSlash: true) }

    /// Trims a header value and collapses runs of spaces, as the canonical form requires.
    static func trimHeaderValue(_ v: String) -> String {
        var out = ""
        var lastSpace = false
        for c in v.trimmingCharacters(in: .whitespaces) {
            if c == " " {
                if !lastSpace { out.append(c) }
                lastSpace = true
            } else {
                out.append(c)
                lastSpace = false
            }
        }
        return out
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func amzDate(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func p(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return p(tm.tm_year + 1900, 4) + p(tm.tm_mon + 1, 2) + p(tm.tm_mday, 2) + "T"
            + p(tm.tm_hour, 2) + p(tm.tm_min, 2) + p(tm.tm_sec, 2) + "Z"
    }
}
