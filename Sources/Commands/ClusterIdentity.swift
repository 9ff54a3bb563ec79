import Foundation
import WALFormat
import Storage

/// The identity of a cluster, read from its data directory without a running server:
/// the system identifier from `global/pg_control`, the major version from `PG_VERSION`, and the WAL
/// segment size from the long page header of a segment in `pg_wal` (pg_control's layout moves
/// between versions; the page header's does not).
public struct ClusterIdentity: Equatable {
    public var systemIdentifier: UInt64
    public var segmentSize: WALSegmentSize
    public var pgVersion: Int

    public init(systemIdentifier: UInt64, segmentSize: WALSegmentSize, pgVersion: Int) {
        self.systemIdentifier = systemIdentifier; self.segmentSize = segmentSize; self.pgVersion = pgVersion
    }

    public static func read(pgdata: String) throws -> ClusterIdentity {
        let versionPath = pgdata + "/PG_VERSION"
        guard let v = FileManager.default.contents(atPath: versionPath) else {
            throw WalctlError.refused("\(pgdata) is not a PostgreSQL data directory (cannot read PG_VERSION)")
        }
        let text = String(decoding: v, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let major = Int(text.split(separator: ".").first ?? ""), major >= 12 else {
            throw WalctlError.refused("PostgreSQL \(text) in \(pgdata) is not supported (walctl supports 12 to 18)")
        }
        let controlPath = pgdata + "/global/pg_control"
        guard let control = FileManager.default.contents(atPath: controlPath), control.count >= 16 else {
            throw WalctlError.refused("cannot read \(controlPath)")
        }
        let sysid = control.withUnsafeBytes { $0.loadLE(UInt64.self, at: 0) }

        let walDir = pgdata + "/pg_wal"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: walDir)) ?? []
        let segments = names.filter { $0.utf8.count == 24 && WALFileName($0) != nil }.sorted()
        // The newest segment whose first page was written: a running server may have created the
        // next ones ahead, zero-filled (PostgreSQL 18 does while the cluster is idle), and those
        // carry no header yet.
        for name in segments.reversed() {
            let segPath = walDir + "/" + name
            guard let fh = FileHandle(forReadingAtPath: segPath) else {
                throw WalctlError.file(operation: "open", path: segPath, errno: errno)
            }
            let head = fh.readData(ofLength: WALPage.longHeaderSize)
            try? fh.close()
            if head.allSatisfy({ $0 == 0 }) { continue }
            let header: LongPageHeader
            do { header = try head.withUnsafeBytes { try LongPageHeader(bytes: $0) } } catch let e as WALFormatError {
                throw WalctlError.invalidWAL(file: segPath, reason: e)
            }
            guard let size = WALSegmentSize(bytes: UInt64(header.segmentSize)) else {
                throw WalctlError.invalidWAL(file: segPath, reason: .invalidSegmentSize(UInt64(header.segmentSize)))
            }
            guard header.systemIdentifier == sysid else {
                throw WalctlError.invalidWAL(file: segPath, reason: .systemIdentifierMismatch(segment: header.systemIdentifier, repository: sysid))
            }
            return ClusterIdentity(systemIdentifier: sysid, segmentSize: size, pgVersion: major)
        }
        // No written segment (a base backup restored without WAL): pg_control records the size too.
        guard let size = segmentSize(pgControl: control) else {
            throw WalctlError.refused("no WAL segment in \(walDir), and no WAL segment size found in \(controlPath)")
        }
        return ClusterIdentity(systemIdentifier: sysid, segmentSize: size, pgVersion: major)
    }

    /// `floatFormat` in pg_control (`FLOATFORMAT_VALUE`, a double), the anchor of the fields after it.
    static let floatFormatValue = 1234567.0

    /// `xlog_seg_size` from the bytes of `global/pg_control`.
    ///
    /// `ControlFileData` is versioned (`pg_control_version` 1300 on PostgreSQL 15 and 16, 1800 on 18)
    /// and its members before the compile-time settings have moved between releases, so the field is
    /// found by layout rather than by a per-version offset: `floatFormat` (the double 1234567.0,
    /// 8-aligned) is followed by `blcksz`, `relseg_size`, `xlog_blcksz` and `xlog_seg_size` (uint32
    /// each). Checked against `pg_controldata` ("Bytes per WAL segment"): `floatFormat` at byte 208 and
    /// `xlog_seg_size` at 228 on 15, 16 and 18 (Tests/integration/test_archive.sh runs init on each). The anchor is accepted only when `xlog_blcksz` is 8192 and
    /// `blcksz` a power of two from 1 to 32 KiB, and the size must be a valid segment size.
    static func segmentSize(pgControl control: Data) -> WALSegmentSize? {
        control.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> WALSegmentSize? in
            let limit = min(b.count, 512)   // PG_CONTROL_MAX_SAFE_SIZE
            var off = 16
            while off + 24 <= limit {
                if b.loadLE(UInt64.self, at: off) == floatFormatValue.bitPattern {
                    let blcksz = b.loadLE(UInt32.self, at: off + 8)
                    let xlogBlcksz = b.loadLE(UInt32.self, at: off + 16)
                    let segSize = b.loadLE(UInt32.self, at: off + 20)
                    if xlogBlcksz == UInt32(WALPage.blockSize), blcksz >= 1024, blcksz <= 32768, blcksz & (blcksz - 1) == 0 {
                        return WALSegmentSize(bytes: UInt64(segSize))
                    }
                }
                off += 8
            }
            return nil
        }
    }
}

/// The PostgreSQL server running in a data directory: the pid on `postmaster.pid`'s first line when
/// that process exists (`kill(pid, 0)`; EPERM: it exists under another user). The one check that
/// restore-backup (--force, --delta) and `recover --status` make before touching or judging a directory.
public enum RunningServer {
    public static func pid(in dir: String) -> Int32? {
        guard let text = try? String(contentsOfFile: dir + "/postmaster.pid", encoding: .utf8),
              let pid = Int32(text.split(separator: "\n").first ?? ""), pid > 0,
              kill(pid, 0) == 0 || errno == EPERM else { return nil }
        return pid
    }
}

/// `walctl init`: binds the repository to the cluster.
public enum RepositoryInit {
    /// Binds the configured repository to `identity`; idempotent for the same cluster, refuses another.
    @discardableResult
    /// With `repository-cipher = aes-256-gcm`, a new repository gets a random data key wrapped with
    /// the passphrase (docs/encryption.md); an existing one is opened with it (a wrong passphrase or
    /// a plaintext repository is refused).
    public static func run(config: Configuration, identity: ClusterIdentity) throws -> RepositoryInfo {
        var repository = try RepositoryFactory.open(config)
        if let s3 = repository.baseStore as? S3Store, let mode = s3.settings.objectLockMode {
            // Retention headers on a bucket without Object Lock fail every PUT: refuse now.
            let enabled: Bool
            do { enabled = try s3.objectLockEnabled() } catch { throw WalctlError.store(error) }
            guard enabled else {
                throw WalctlError.refused("s3-object-lock-mode = \(mode.lowercased()), but bucket \(s3.bucket) has no Object Lock enabled (it can only be enabled when the bucket is created, with versioning): use a bucket created with Object Lock, or unset s3-object-lock-mode")
            }
        }
        var info = RepositoryInfo(systemIdentifier: identity.systemIdentifier, walSegmentSize: identity.segmentSize.bytes,
                                  pgVersion: identity.pgVersion, createdAt: PGTimestamp(date: Date()))
        if !repository.isEncrypted, let cipher = try RepositoryFactory.cipherSettings(config) {
            // Not encrypted yet and no binding (open refuses a bound plaintext repository): create the key.
            let envelope: RepositoryEncryption
            let key: [UInt8]
            switch cipher.key {
            case .passphrase(let passphrase):
                (envelope, key) = try RepositoryFactory.cipherCall { () throws(CipherError) in try RepositoryEncryption.create(passphrase: passphrase) }
                RepositoryFactory.keyCache().store(fingerprint: envelope.fingerprint, dataKey: key, passphrase: passphrase)
            case .kms(let keyID):
                // KMS GenerateDataKey: the plaintext is the data key, the blob goes into the binding.
                let generated = try RepositoryFactory.kmsCall { try makeKMSClient(config).generateDataKey(keyID: keyID) }
                let wrapping = RepositoryEncryption.KMSWrapping(keyId: keyID, keyArn: generated.keyARN,
                                                                ciphertextBlob: Data(generated.ciphertextBlob).base64EncodedString())
                envelope = try RepositoryFactory.cipherCall { () throws(CipherError) in try RepositoryEncryption.create(kmsDataKey: generated.plaintext, wrapping: wrapping) }
                key = generated.plaintext
                RepositoryFactory.keyCache().store(fingerprint: envelope.fingerprint, dataKey: key,
                                                   passphrase: RepositoryEncryption.kmsCacheSecret(configuredKey: keyID))
            }
            info.encryption = envelope
            repository = Repository(store: EncryptedStore(base: repository.store, dataKey: key, chunkSize: envelope.chunkSize), url: repository.url)
        }
        do { try repository.bind(info) } catch let e as StoreError { throw WalctlError.store(e) }
        return try repository.info() ?? info
    }
}
