import Foundation
import Logging
import LocalFS
import Storage

/// Opens the repository named by the `repository` setting.
public enum RepositoryFactory {
    /// `file:///abs/path` (or a plain absolute path) -> FileStore; `s3://bucket/prefix` -> S3Store.
    /// The URL's form was validated at load (`SettingType.repositoryURL`). The S3 store's logger is
    /// `logger`, else one made from `log-level` (so its retries and slow requests are warnings on
    /// stderr whichever command opened it). With `repository-cipher = aes-256-gcm` the binding's data
    /// key is unwrapped with the passphrase (a wrong one is refused here, before anything else
    /// happens) and the store encrypts and authenticates every object (docs/encryption.md). An
    /// uninitialised repository is returned plain: `walctl init` creates its key; every other
    /// command finds no binding and says so.
    public static func open(_ config: Configuration, logger: Logger? = nil) throws -> Repository {
        let base = try openPlain(config, logger: logger)
        guard let cipher = try cipherSettings(config) else { return base }
        let info: RepositoryInfo?
        do { info = try base.binding() } catch let e as StoreError { throw WalctlError.store(e) }
        guard let info else { return base }
        guard let envelope = info.encryption else {
            throw WalctlError.cipher(.key("repository \(base.url) is not encrypted, but repository-cipher = \(cipher.name): encryption is chosen at `walctl init` for a new repository; unset repository-cipher for this one"))
        }
        // A file repository's process with a passphrase makes no TLS connection (KMS would): libcrypto
        // may start lean (a third of the encrypted archive-get's extra instructions;
        // docs/benchmarks.md, "Encryption").
        if base.store is FileStore, case .passphrase = cipher.key { CipherPrimitives.preferLeanLibraryInit() }
        let key = try unlock(envelope, with: cipher.key, repository: base.url, config: config)
        return Repository(store: EncryptedStore(base: base.store, dataKey: key, chunkSize: envelope.chunkSize), url: base.url, justRead: info)
    }

    /// The repository without encryption (the binding, listings, `walctl decrypt` of a local file).
    public static func openPlain(_ config: Configuration, logger: Logger? = nil) throws -> Repository {
        let logger = logger ?? WalctlLog.make(level: config.logLevel)
        let url = try config.require(.repository)
        let invalid = WalctlError.configuration(.invalidValue(name: "repository", value: url, expected: SettingType.repositoryURL.allowed,
                                                              source: config.sources["repository"]))
        guard SettingType.repositoryURL.accepts(url) else { throw invalid }
        if url.hasPrefix("file://") {
            return Repository(store: FileStore(root: String(url.dropFirst("file://".count))), url: url)
        }
        if url.hasPrefix("/") {
            return Repository(store: FileStore(root: url), url: "file://" + url)
        }
        if url.hasPrefix("s3://") {
            return Repository(store: try makeS3Store(url: url, config: config, logger: logger), url: url)
        }
        throw invalid
    }

    /// What opens an encrypted repository's data key: a passphrase, or an AWS KMS key.
    public enum CipherKey {
        case passphrase([UInt8])
        /// `repository-cipher-kms-key`.
        case kms(String)
    }

    /// `repository-cipher` and its passphrase or KMS key, nil for `none`.
    public static func cipherSettings(_ config: Configuration) throws -> (name: String, key: CipherKey)? {
        let name = (config[.repositoryCipher] ?? "none").lowercased()
        if name == "none" { return nil }
        if let k = config[.repositoryCipherKMSKey] { return (name, .kms(k)) }
        return (name, .passphrase(try passphrase(config, setting: .repositoryCipherPass, file: .repositoryCipherPassFile)))
    }

    /// The data key of `envelope` (from the key cache, else by scrypt or KMS Decrypt). A mismatch
    /// (a passphrase for a KMS-wrapped key, a KMS key for a passphrase-wrapped one, another KMS key,
    /// KMS refusing) is refused with one line naming the key and, for KMS, its error code.
    static func unlock(_ envelope: RepositoryEncryption, with key: CipherKey, repository: String, config: Configuration) throws -> [UInt8] {
        switch key {
        case .passphrase(let p):
            return try cipherCall { () throws(CipherError) in try envelope.unlock(passphrase: p, repository: repository, cache: keyCache()) }
        case .kms(let keyID):
            return try kmsCall {
                try envelope.unlock(kmsKey: keyID, repository: repository, cache: keyCache()) { blob in
                    try makeKMSClient(config).decrypt(ciphertextBlob: blob, keyID: keyID).plaintext
                }
            }
        }
    }

    /// Runs `body`, reporting a CipherError or StoreError (credentials) as a WalctlError.
    static func kmsCall<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as CipherError { throw WalctlError.cipher(e) } catch let e as StoreError { throw WalctlError.store(e) }
    }

    /// The passphrase from a setting (or its WALCTL_ variable), else the first line of a file.
    static func passphrase(_ config: Configuration, setting: Setting, file: Setting) throws -> [UInt8] {
        if let p = config[setting] { return Array(p.utf8) }
        guard let path = config[file] else {
            throw WalctlError.cipher(.key("repository-cipher is set but no passphrase is: set \(setting.name) (\(setting.environmentName)) or \(file.name)"))
        }
        return try readPassphraseFile(path, what: file.name)
    }

    /// The first line of `path` (without its newline); refused when empty.
    public static func readPassphraseFile(_ path: String, what: String) throws -> [UInt8] {
        let bytes: [UInt8]?
        do { bytes = try LocalFS.readFile(path, limit: 1 << 16, followSymlinks: true) } catch { throw WalctlError(error) }
        guard let bytes else { throw WalctlError.cipher(.key("\(what) \(path) does not exist")) }
        var line = Array(bytes.prefix { $0 != 0x0A })
        if line.last == 0x0D { line.removeLast() }
        guard !line.isEmpty else { throw WalctlError.cipher(.key("\(what) \(path) holds no passphrase (its first line is empty)")) }
        return line
    }

    /// Runs `body`, reporting its CipherError as a WalctlError.
    static func cipherCall<T>(_ body: () throws(CipherError) -> T) throws -> T {
        do { return try body() } catch { throw WalctlError.cipher(error) }
    }

    /// Where unwrapped keys are cached for this user (`KeyCache`).
    static func keyCache() -> KeyCache { KeyCache(directory: ArchiveSpool.userStateDirectory() + "/keys") }
}
