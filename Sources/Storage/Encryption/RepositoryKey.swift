import Foundation
import LocalFS

/// scrypt's parameters, stored with the wrapped key (docs/encryption.md).
public struct ScryptParameters: Codable, Equatable, Sendable {
    public var algorithm: String
    /// 32 random bytes, hex.
    public var salt: String
    public var n: UInt64
    public var r: UInt64
    public var p: UInt64

    /// N = 2^15, r = 8, p = 1: 32 MiB and ~0.1-0.3 s per derivation (once per key per user: KeyCache).
    public static func fresh() throws(CipherError) -> ScryptParameters {
        ScryptParameters(algorithm: "scrypt", salt: CipherPrimitives.hex(try CipherPrimitives.random(32)), n: 1 << 15, r: 8, p: 1)
    }

    /// Bounds a binding may ask for (a planted binding must not make walctl allocate gigabytes).
    var acceptable: Bool {
        algorithm == "scrypt" && n >= 1024 && n <= (1 << 20) && n & (n - 1) == 0 && (1...32).contains(r) && (1...16).contains(p)
            && CipherPrimitives.unhex(salt).map { $0.count >= 16 } == true
    }

    func derive(_ passphrase: [UInt8]) throws(CipherError) -> [UInt8] {
        guard acceptable, let s = CipherPrimitives.unhex(salt) else { throw .key("the repository's key derivation parameters are invalid (\(algorithm) N=\(n) r=\(r) p=\(p))") }
        return try CipherPrimitives.scrypt(passphrase: passphrase, salt: s, n: n, r: r, p: p)
    }
}

/// The envelope in the binding (`repository.json`, field `encryption`): the repository's random
/// 32-byte data key, wrapped (AES-256-GCM) by a key derived from the passphrase, and a key check
/// value. Never the key itself.
public struct RepositoryEncryption: Codable, Equatable, Sendable {
    /// `aes-256-gcm`.
    public var cipher: String
    /// Plaintext bytes per chunk of every object (65536).
    public var chunkSize: Int
    /// How the key-encryption key is derived from the passphrase (nil: the key is wrapped by KMS).
    public var kdf: ScryptParameters?
    /// hex(nonce(12) || AES-256-GCM(KEK, data key, AAD "walctl data key v1") (32) || tag(16)); nil
    /// when the key is wrapped by KMS.
    public var wrappedKey: String?
    /// hex(HMAC-SHA-256(data key, "walctl key check v1")): which data key this repository uses.
    public var keyCheck: String
    /// The data key wrapped by AWS KMS instead of a passphrase (`repository-cipher-kms-key`).
    public var kms: KMSWrapping?

    /// A data key wrapped by AWS KMS: the CiphertextBlob that KMS Decrypt turns back into it.
    public struct KMSWrapping: Codable, Equatable, Sendable {
        /// `repository-cipher-kms-key` as set when the key was wrapped (an ARN, `alias/...` or a key id).
        public var keyId: String
        /// The key's ARN as KMS reported it.
        public var keyArn: String
        /// base64 of KMS's CiphertextBlob.
        public var ciphertextBlob: String

        public init(keyId: String, keyArn: String, ciphertextBlob: String) {
            self.keyId = keyId
            self.keyArn = keyArn
            self.ciphertextBlob = ciphertextBlob
        }
    }

    public static let cipherName = "aes-256-gcm"
    static let wrapAAD = Array("walctl data key v1".utf8)

    static func keyCheck(_ dataKey: [UInt8]) throws(CipherError) -> String {
        CipherPrimitives.hex(try CipherPrimitives.hmac(key: dataKey, Array("walctl key check v1".utf8)))
    }

    /// A new repository key, wrapped with `passphrase`.
    public static func create(passphrase: [UInt8]) throws(CipherError) -> (RepositoryEncryption, dataKey: [UInt8]) {
        let dataKey = try CipherPrimitives.random(32)
        let kdf = try ScryptParameters.fresh()
        let wrapped = try GCM.sealMessage(key: try kdf.derive(passphrase), aad: wrapAAD, dataKey)
        return (RepositoryEncryption(cipher: cipherName, chunkSize: ChunkFormat.defaultChunkSize, kdf: kdf,
                                     wrappedKey: CipherPrimitives.hex(wrapped), keyCheck: try keyCheck(dataKey)), dataKey)
    }

    /// The same data key wrapped with `newPassphrase` (fresh salt): objects are not rewritten.
    public func rewrapped(dataKey: [UInt8], newPassphrase: [UInt8]) throws(CipherError) -> RepositoryEncryption {
        var kdf = try ScryptParameters.fresh()
        if let old = self.kdf, old.acceptable { kdf.n = max(kdf.n, old.n) }
        var e = self
        e.kdf = kdf
        e.kms = nil
        e.wrappedKey = CipherPrimitives.hex(try GCM.sealMessage(key: try kdf.derive(newPassphrase), aad: Self.wrapAAD, dataKey))
        return e
    }

    /// A new repository key from KMS GenerateDataKey: `dataKey` is its Plaintext, `wrapping` holds
    /// its CiphertextBlob.
    public static func create(kmsDataKey dataKey: [UInt8], wrapping: KMSWrapping) throws(CipherError) -> RepositoryEncryption {
        guard dataKey.count == 32 else { throw .key("AWS KMS returned a data key of \(dataKey.count) bytes, not 32") }
        return RepositoryEncryption(cipher: cipherName, chunkSize: ChunkFormat.defaultChunkSize, kdf: nil, wrappedKey: nil,
                                    keyCheck: try keyCheck(dataKey), kms: wrapping)
    }

    /// The same data key wrapped by KMS (`wrapping`, from Encrypt): objects are not rewritten.
    public func rewrapped(kms wrapping: KMSWrapping) -> RepositoryEncryption {
        var e = self
        e.kdf = nil
        e.wrappedKey = nil
        e.kms = wrapping
        return e
    }

    /// How the data key is wrapped, for messages: `a passphrase` or `AWS KMS key ARN`.
    public var wrappingDescription: String { kms.map { "AWS KMS key \($0.keyArn)" } ?? "a passphrase" }

    /// Which wrapping this is (names the key cache entry; public data only).
    public var fingerprint: String {
        let wrap: String
        if let kms { wrap = "kms \(kms.keyId) \(kms.keyArn) \(kms.ciphertextBlob)" } else if let kdf {
            wrap = "\(kdf.algorithm) \(kdf.salt) \(kdf.n) \(kdf.r) \(kdf.p) \(wrappedKey ?? "")"
        } else { wrap = "none" }
        let text = "\(cipher) \(chunkSize) \(wrap) \(keyCheck)"
        return (try? CipherPrimitives.sha256(Array(text.utf8))).map { CipherPrimitives.hex(Array($0.prefix(16))) } ?? "unknown"
    }

    /// The data key, unwrapped with `passphrase` (from `cache` when it holds this wrapping for this
    /// passphrase). A wrong passphrase throws `.key` naming `repository`.
    public func unlock(passphrase: [UInt8], repository: String, cache: KeyCache? = nil) throws(CipherError) -> [UInt8] {
        guard cipher == Self.cipherName else { throw .key("repository \(repository) uses cipher \(cipher), which this walctl does not know") }
        guard ChunkFormat.chunkSizeRange.contains(chunkSize) else { throw .key("repository \(repository): invalid chunk size \(chunkSize) in its binding") }
        guard let check = CipherPrimitives.unhex(keyCheck), check.count == 32 else { throw .key("repository \(repository): its binding has no valid key check value") }
        if let kms {
            throw .key("repository \(repository)'s data key is wrapped by AWS KMS key \(kms.keyArn), not a passphrase: set repository-cipher-kms-key (and no passphrase)")
        }
        if let cache, let key = cache.load(fingerprint: fingerprint, passphrase: passphrase),
           (try? Self.keyCheck(key)) == keyCheck {
            return key
        }
        guard let kdf, let wrappedKey, let wrapped = CipherPrimitives.unhex(wrappedKey), wrapped.count == 12 + 32 + 16 else {
            throw .key("repository \(repository): its binding's wrapped key is malformed")
        }
        guard let key = try GCM.openMessage(key: try kdf.derive(passphrase), aad: Self.wrapAAD, wrapped), key.count == 32 else {
            throw .key("wrong passphrase for encrypted repository \(repository) (repository-cipher-pass, repository-cipher-pass-file or WALCTL_REPOSITORY_CIPHER_PASS does not open its key)")
        }
        guard CipherPrimitives.equal(Array(try Self.keyCheck(key).utf8), Array(keyCheck.utf8)) else {
            throw .key("repository \(repository): the unwrapped key does not match the binding's key check value (binding damaged)")
        }
        cache?.store(fingerprint: fingerprint, dataKey: key, passphrase: passphrase)
        return key
    }

    /// What the key cache verifies a KMS-wrapped entry with: the configured key, so a different
    /// `repository-cipher-kms-key` is not served from the cache but asked of KMS (which refuses it).
    public static func kmsCacheSecret(configuredKey: String) -> [UInt8] { Array("walctl kms v1 \(configuredKey)".utf8) }

    /// The data key of a KMS-wrapped repository: from `cache` when it holds this wrapping for
    /// `configuredKey`, else `decrypt(ciphertextBlob)` (KMS Decrypt with `configuredKey`), checked
    /// against the key check value, then cached. A passphrase repository is refused.
    public func unlock(kmsKey configuredKey: String, repository: String, cache: KeyCache? = nil,
                       decrypt: ([UInt8]) throws -> [UInt8]) throws -> [UInt8] {
        guard cipher == Self.cipherName else { throw CipherError.key("repository \(repository) uses cipher \(cipher), which this walctl does not know") }
        guard ChunkFormat.chunkSizeRange.contains(chunkSize) else { throw CipherError.key("repository \(repository): invalid chunk size \(chunkSize) in its binding") }
        guard let kms else {
            throw CipherError.key("repository \(repository)'s data key is wrapped by a passphrase, not AWS KMS: unset repository-cipher-kms-key and set repository-cipher-pass or repository-cipher-pass-file (rotate-key --new-kms-key moves it to KMS)")
        }
        let secret = Self.kmsCacheSecret(configuredKey: configuredKey)
        if let cache, let key = cache.load(fingerprint: fingerprint, passphrase: secret), (try? Self.keyCheck(key)) == keyCheck {
            return key
        }
        guard let blob = Data(base64Encoded: kms.ciphertextBlob), !blob.isEmpty else {
            throw CipherError.key("repository \(repository): its binding's KMS ciphertext blob is malformed")
        }
        let key = try decrypt(Array(blob))
        guard key.count == 32, CipherPrimitives.equal(Array(try Self.keyCheck(key).utf8), Array(keyCheck.utf8)) else {
            throw CipherError.key("repository \(repository): the key AWS KMS (\(configuredKey)) unwrapped does not match the binding's key check value (binding damaged)")
        }
        cache?.store(fingerprint: fingerprint, dataKey: key, passphrase: secret)
        return key
    }
}

/// Unwrapped data keys, kept so the once-per-segment commands do not pay scrypt every time: one
/// file per wrapping (`<state dir>/keys/<fingerprint>`, 0600 in a 0700 directory of the running
/// user's), holding the data key and HMAC-SHA-256(data key, "walctl passphrase v1" || passphrase),
/// so a different passphrase is still refused. Its protection is the file's permissions, the same
/// as the passphrase file's (docs/encryption.md). Best effort: a cache that cannot be read or
/// written is ignored and the key is derived again.
public struct KeyCache: Sendable {
    public var directory: String
    public init(directory: String) { self.directory = directory }
    static let magic = Array("WCTLKEY1".utf8)

    func verifier(_ dataKey: [UInt8], _ passphrase: [UInt8]) -> [UInt8]? {
        try? CipherPrimitives.hmac(key: dataKey, Array("walctl passphrase v1".utf8) + passphrase)
    }

    public func load(fingerprint: String, passphrase: [UInt8]) -> [UInt8]? {
        let path = directory + "/" + fingerprint
        guard let opened = try? LocalFS.openRead(path) else { return nil }
        close(opened.fd)
        // Ours and private, or not used.
        guard opened.status.st_uid == geteuid(), opened.status.st_mode & 0o077 == 0,
              let bytes = try? LocalFS.readFile(path, limit: 4096), bytes.count == 72,
              Array(bytes.prefix(8)) == Self.magic else { return nil }
        let key = Array(bytes[8..<40])
        guard let v = verifier(key, passphrase), CipherPrimitives.equal(v, Array(bytes[40..<72])) else { return nil }
        return key
    }

    public func store(fingerprint: String, dataKey: [UInt8], passphrase: [UInt8]) {
        guard let v = verifier(dataKey, passphrase) else { return }
        do {
            try LocalFS.makePrivateDirectory(directory, what: "key cache directory")
            try LocalFS.writeFile(directory + "/" + fingerprint, Self.magic + dataKey + v, mode: 0o600, durability: .none)
        } catch {}
    }

    public func remove(fingerprint: String) { unlink(directory + "/" + fingerprint) }
}
