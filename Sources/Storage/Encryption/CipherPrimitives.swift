import CCrypto
import CLazyLoad
import Foundation

/// Why an encrypted repository or object was refused (docs/encryption.md, docs/errors.md).
public enum CipherError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The passphrase (or key) does not open the repository's data key, is missing, or the
    /// configuration does not match the repository (`cipher-key`).
    case key(String)
    /// An object fails authentication: its bytes, its length, its order or the name it is stored
    /// under are not what walctl wrote with this repository's key (`object-tampered`).
    case tampered(key: String, reason: String)
    /// libcrypto is missing or refused an operation (`cipher-key`: nothing can be encrypted).
    case library(String)

    /// The stable error code (docs/errors.md).
    public var code: String {
        switch self {
        case .key, .library: return "cipher-key"
        case .tampered: return "object-tampered"
        }
    }

    public var description: String {
        switch self {
        case .key(let m): return m
        case .tampered(let k, let why): return "object \(k) fails authentication (\(why)): it was changed, truncated, reordered or moved from another name after walctl wrote it, or it was written with another repository key; refusing to use it"
        case .library(let m): return m
        }
    }
}

/// The libcrypto primitives repository encryption uses; nothing cryptographic is implemented in
/// walctl itself.
public enum CipherPrimitives {
    static func libraryError(_ what: String) -> CipherError {
        if let e = walctl_crypto_load_error() { return .library(String(cString: e)) }
        return .library("libcrypto refused \(what)")
    }

    /// libcrypto without its configuration file and legacy name tables (`walctl_crypto_prefer_lean_init`):
    /// for a process that reads a file repository and makes no TLS connection. Call before the first use.
    public static func preferLeanLibraryInit() { walctl_crypto_prefer_lean_init() }

    /// `n` bytes from libcrypto's CSPRNG.
    public static func random(_ n: Int) throws(CipherError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        guard out.withUnsafeMutableBytes({ walctl_random_bytes($0.baseAddress, n) }) == 1 else { throw libraryError("random bytes") }
        return out
    }

    /// HMAC-SHA-256.
    public static func hmac(key: [UInt8], _ message: [UInt8]) throws(CipherError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = key.withUnsafeBytes { k in message.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { walctl_hmac_sha256(k.baseAddress, k.count, m.baseAddress, m.count, $0.baseAddress?.assumingMemoryBound(to: UInt8.self)) } } }
        guard ok == 1 else { throw libraryError("HMAC-SHA-256") }
        return out
    }

    /// SHA-256.
    public static func sha256(_ message: [UInt8]) throws(CipherError) -> [UInt8] {
        guard let c = walctl_sha256_new() else { throw libraryError("SHA-256") }
        defer { walctl_sha256_free(c) }
        var out = [UInt8](repeating: 0, count: 32)
        let ok = message.withUnsafeBytes { walctl_sha256_update(c, $0.baseAddress, $0.count) } == 1
            && out.withUnsafeMutableBytes { walctl_sha256_final(c, $0.baseAddress?.assumingMemoryBound(to: UInt8.self)) } == 1
        guard ok else { throw libraryError("SHA-256") }
        return out
    }

    /// scrypt (RFC 7914), 32 bytes.
    public static func scrypt(passphrase: [UInt8], salt: [UInt8], n: UInt64, r: UInt64, p: UInt64) throws(CipherError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = passphrase.withUnsafeBytes { pw in salt.withUnsafeBytes { s in out.withUnsafeMutableBytes { o in
            walctl_scrypt(pw.baseAddress, pw.count, s.baseAddress, s.count, n, r, p, o.baseAddress, 32) } } }
        guard ok == 1 else { throw libraryError("scrypt (N=\(n), r=\(r), p=\(p))") }
        return out
    }

    /// Constant-time equality of two byte strings of the same length.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in walctl_constant_time_equal(x.baseAddress, y.baseAddress, a.count) } } == 1
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](); out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func unhex(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c { case 0x30...0x39: return c - 0x30; case 0x61...0x66: return c - 0x61 + 10; case 0x41...0x46: return c - 0x41 + 10; default: return nil }
        }
        var out = [UInt8](); out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = v(u[i]), let l = v(u[i + 1]) else { return nil }
            out.append(h << 4 | l); i += 2
        }
        return out
    }
}

/// One AES-256-GCM key, set up once, sealing or opening messages (chunks) with 12-byte nonces.
final class GCM {
    private let ctx: OpaquePointer
    init(key: [UInt8], encrypt: Bool) throws(CipherError) {
        precondition(key.count == 32)
        guard let c = key.withUnsafeBytes({ walctl_gcm_new($0.baseAddress?.assumingMemoryBound(to: UInt8.self), encrypt ? 1 : 0) }) else {
            throw CipherPrimitives.libraryError("AES-256-GCM")
        }
        ctx = c
    }
    deinit { walctl_gcm_free(ctx) }

    /// Encrypts `input` into `output` (same length) and `tag` (16 bytes).
    func seal(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, input: UnsafeRawBufferPointer,
              output: UnsafeMutableRawPointer, tag: UnsafeMutableRawPointer) -> Bool {
        walctl_gcm_seal(ctx, nonce.baseAddress?.assumingMemoryBound(to: UInt8.self), aad.baseAddress, aad.count,
                        input.baseAddress, input.count, output, tag.assumingMemoryBound(to: UInt8.self)) == 1
    }

    /// Decrypts `input` into `output` (same length); false when the tag does not match (discard `output`).
    func open(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, input: UnsafeRawBufferPointer,
              tag: UnsafeRawPointer, output: UnsafeMutableRawPointer) -> Bool {
        walctl_gcm_open(ctx, nonce.baseAddress?.assumingMemoryBound(to: UInt8.self), aad.baseAddress, aad.count,
                        input.baseAddress, input.count, tag.assumingMemoryBound(to: UInt8.self), output) == 1
    }

    /// One whole message: nonce(12) || ciphertext || tag(16).
    static func sealMessage(key: [UInt8], aad: [UInt8], _ plaintext: [UInt8]) throws(CipherError) -> [UInt8] {
        let g = try GCM(key: key, encrypt: true)
        let nonce = try CipherPrimitives.random(12)
        var out = [UInt8](repeating: 0, count: 12 + plaintext.count + 16)
        let ok = nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in plaintext.withUnsafeBytes { p in out.withUnsafeMutableBytes { o in
            g.seal(nonce: n, aad: a, input: p, output: o.baseAddress! + 12, tag: o.baseAddress! + 12 + plaintext.count) } } } }
        guard ok else { throw CipherPrimitives.libraryError("AES-256-GCM") }
        out.replaceSubrange(0..<12, with: nonce)
        return out
    }

    /// Opens `sealMessage`'s output; nil when it does not authenticate.
    static func openMessage(key: [UInt8], aad: [UInt8], _ message: [UInt8]) throws(CipherError) -> [UInt8]? {
        guard message.count >= 28 else { return nil }
        let g = try GCM(key: key, encrypt: false)
        let n = message.count - 28
        var out = [UInt8](repeating: 0, count: max(n, 1))
        let ok = message.withUnsafeBytes { m in aad.withUnsafeBytes { a in out.withUnsafeMutableBytes { o in
            g.open(nonce: UnsafeRawBufferPointer(rebasing: m[0..<12]), aad: a, input: UnsafeRawBufferPointer(rebasing: m[12..<(12 + n)]),
                   tag: m.baseAddress! + 12 + n, output: o.baseAddress!) } } }
        guard ok else { return nil }
        return Array(out.prefix(n))
    }
}
