import Foundation
import LocalFS
import Storage

/// `walctl decrypt OBJECT`: an encrypted object's bytes as they were before encryption (still
/// compressed: `walctl decrypt KEY | zstd -d` gives the segment), for an operator reading the
/// repository by hand (docs/encryption.md).
public enum DecryptObject {
    /// The object's name (its key, which is authenticated with it) for a local file: `name` when
    /// given, else the path relative to a file repository's root, else the part from the last
    /// `wal/` or `backup/` directory of the path.
    public static func objectName(path: String, repositoryRoot: String?, name: String?) throws -> String {
        if let name { return name }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let normalized = (absolute as NSString).standardizingPath
        if let root = repositoryRoot.map({ ($0 as NSString).standardizingPath }), normalized.hasPrefix(root + "/") {
            return String(normalized.dropFirst(root.count + 1))
        }
        let parts = normalized.split(separator: "/").map(String.init)
        if let i = parts.lastIndex(where: { $0 == "wal" || $0 == "backup" }), i < parts.count - 1 {
            return parts[i...].joined(separator: "/")
        }
        throw WalctlError.usage("cannot tell which object \(path) is (its name is authenticated with it): pass --name wal/TTTTTTTTLLLLLLLL/FILE or backup/LABEL/FILE")
    }

    /// Streams the decrypted bytes of `object` (a repository key, or a local file's path) to `sink`.
    /// Each chunk is authenticated before it is written; on failure (thrown) what was written must
    /// be discarded (the command exits non-zero).
    public static func run(config: Configuration, object: String, name: String?, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let repository = try RepositoryFactory.open(config)
        guard let store = repository.store as? EncryptedStore else {
            throw WalctlError.cipher(.key("repository \(repository.url) is not opened with a key: set repository-cipher = aes-256-gcm and its passphrase (an unencrypted repository's objects are read with zstd -d directly)"))
        }
        var st = stat()
        let isLocal = object.hasPrefix("/") || object.hasPrefix("./") || object.hasPrefix("../")
            || (!object.hasPrefix(RepositoryLayout.walPrefix) && !object.hasPrefix(RepositoryLayout.backupPrefix) && stat(object, &st) == 0)
        if isLocal {
            let root = (store.base as? FileStore)?.root
            let key = try objectName(path: object, repositoryRoot: root, name: name)
            guard let kind = EncryptedStore.kind(of: key) else {
                throw WalctlError.usage("\(key) is stored in plaintext: read it directly")
            }
            guard let (fd, _) = try wrapLocal({ () throws(LocalFSError) in try LocalFS.openRead(object, followSymlinks: true) }) else {
                throw WalctlError.file(operation: "open", path: object, errno: ENOENT)
            }
            defer { close(fd) }
            let opener = store.opener(kind: kind, name: key)
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            do {
                while true {
                    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 { if errno == EINTR { continue }; throw WalctlError.file(operation: "read", path: object, errno: errno) }
                    if n == 0 { break }
                    try buf.withUnsafeBytes { try opener.update(UnsafeRawBufferPointer(rebasing: $0[0..<n]), emit: sink) }
                }
                try opener.finish(emit: sink)
            } catch let e as CipherError { throw WalctlError.cipher(e) }
            return
        }
        let key = name ?? object
        do {
            try store.read(key: key, into: sink)
        } catch let e as CipherError { throw WalctlError.cipher(e) } catch let e as StoreError { throw WalctlError.store(e) }
    }

    static func wrapLocal<T>(_ body: () throws(LocalFSError) -> T) throws -> T {
        do { return try body() } catch { throw WalctlError(error) }
    }
}

/// `walctl repository rotate-key`: wraps the repository's data key with a new passphrase, or with an
/// AWS KMS key (KMS Encrypt: `newKMSKey`, or the configured `repository-cipher-kms-key` again for a
/// KMS repository when neither is given). Objects are not rewritten (they stay encrypted with the
/// same data key); the binding is replaced.
public enum RotateKey {
    public struct Result {
        public var repository: String
        public var oldFingerprint: String
        public var newFingerprint: String
        /// What wraps the key now: `the new passphrase` or `AWS KMS key ARN`.
        public var wrappedBy: String
    }

    public static func run(config: Configuration, newPassphrase: [UInt8]?, newKMSKey: String? = nil) throws -> Result {
        if let p = newPassphrase, p.isEmpty { throw WalctlError.cipher(.key("the new passphrase is empty")) }
        if newPassphrase != nil && newKMSKey != nil { throw WalctlError.usage("rotate-key takes a new passphrase or a new KMS key, not both") }
        guard let cipher = try RepositoryFactory.cipherSettings(config) else {
            throw WalctlError.cipher(.key("repository-cipher is not set: rotate-key needs the current passphrase or KMS key (repository-cipher = aes-256-gcm with repository-cipher-pass, repository-cipher-pass-file or repository-cipher-kms-key)"))
        }
        let plain = try RepositoryFactory.openPlain(config)
        let info: RepositoryInfo?
        do { info = try plain.binding() } catch let e as StoreError { throw WalctlError.store(e) }
        guard var info else { throw WalctlError.notInitialised(repository: plain.url) }
        guard let envelope = info.encryption else {
            throw WalctlError.cipher(.key("repository \(plain.url) is not encrypted: there is no key to rotate"))
        }
        let cache = RepositoryFactory.keyCache()
        let key = try RepositoryFactory.unlock(envelope, with: cipher.key, repository: plain.url, config: config)
        var targetKMS = newKMSKey
        if newPassphrase == nil, targetKMS == nil {
            guard case .kms(let current) = cipher.key else {
                throw WalctlError.usage("rotate-key needs the new passphrase (--new-pass-file FILE or WALCTL_REPOSITORY_CIPHER_NEW_PASS) or a KMS key (--new-kms-key KEY)")
            }
            targetKMS = current
        }
        let next: RepositoryEncryption
        let cacheSecret: [UInt8]
        if let target = targetKMS {
            let wrapped = try RepositoryFactory.kmsCall { try makeKMSClient(config).encrypt(plaintext: key, keyID: target) }
            next = envelope.rewrapped(kms: RepositoryEncryption.KMSWrapping(keyId: target, keyArn: wrapped.keyARN,
                                                                            ciphertextBlob: Data(wrapped.ciphertextBlob).base64EncodedString()))
            cacheSecret = RepositoryEncryption.kmsCacheSecret(configuredKey: target)
        } else {
            let p = newPassphrase!
            next = try RepositoryFactory.cipherCall { () throws(CipherError) in try envelope.rewrapped(dataKey: key, newPassphrase: p) }
            cacheSecret = p
        }
        info.encryption = next
        do { try plain.writeBinding(info) } catch let e as StoreError { throw WalctlError.store(e) }
        cache.remove(fingerprint: envelope.fingerprint)
        cache.store(fingerprint: next.fingerprint, dataKey: key, passphrase: cacheSecret)
        return Result(repository: plain.url, oldFingerprint: envelope.fingerprint, newFingerprint: next.fingerprint,
                      wrappedBy: next.kms.map { "AWS KMS key \($0.keyArn)" } ?? "the new passphrase")
    }
}
