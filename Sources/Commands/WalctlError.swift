import Foundation
import Storage
import WALFormat
import Codec

/// Every failure a walctl command reports, with a stable code (see docs/errors.md) and a one-line
/// message an operator can act on.
public enum WalctlError: Error, CustomStringConvertible {
    /// The name is not a WAL segment, partial, history or backup history file name.
    case invalidName(String)
    /// The repository has no `repository.json`: `walctl init` was not run.
    case notInitialised(repository: String)
    /// A local file could not be read or written.
    case file(operation: String, path: String, errno: Int32)
    /// The file is not the WAL segment its name says, or belongs to another cluster.
    case invalidWAL(file: String, reason: WALFormatError)
    /// A different file is already archived under this name.
    case archiveMismatch(name: String, archivedCRC: String, newCRC: String)
    /// The repository failed.
    case store(StoreError)
    /// A stored object could not be decoded.
    case codec(name: String, CodecError)
    /// The restored bytes do not match the checksum recorded at archive time.
    case checksumMismatch(name: String, expected: String, actual: String, size: Int64, expectedSize: Int64)
    case configuration(ConfigurationError)
    /// PostgreSQL or libpq failed.
    case postgres(String)
    /// Waited too long for something (WAL to arrive, a lock).
    case timeout(String)
    /// A precondition an operator must fix (non-empty directory, wrong cluster, ...).
    case refused(String)
    /// archive-get found no meta for `file` but could not prove the repository is the right one and
    /// healthy (binding missing or unreadable, another cluster's): never "not found" (exit 1).
    case absenceUnconfirmed(file: String, repository: String, reason: String)
    /// archive-get: a segment inside the range `walctl recover` planned is absent: a broken
    /// repository, not the end of the archive.
    case plannedSegmentMissing(file: String, repository: String, planPath: String, range: String)
    /// The command line could not be parsed (archive-get reports it as a failure, exit 255).
    case usage(String)
    /// `walctl drill`: no PostgreSQL server binaries of the backup's major version were found.
    case serverBinariesMissing(String)
    /// Client-side encryption: a wrong or missing passphrase, a configuration that does not match
    /// the repository (`cipher-key`), or an object that fails authentication (`object-tampered`).
    case cipher(CipherError)
    /// `walctl expire` without any retention setting: the message names them.
    case retentionUnset(String)
    /// Another process holds the repository lease (`walctl expire`, docs/retention.md).
    case leaseHeld(String)
    /// Backup chain (docs/backup.md): `no-parent-backup` — an incremental backup has no backup to build
    /// on; `chain-damaged` — a member of a restore's chain is missing or damaged (nothing was written).
    case noParentBackup(String)
    case chainDamaged(String)
    /// PostgreSQL 17+ native incremental backups (docs/backup.md): `summarize-wal-off` — the server's
    /// `summarize_wal` is off; `wal-summaries-missing` — the WAL summaries from the parent backup's start
    /// are gone or do not cover it; `parent-manifest-refused` — the server refused the parent's
    /// `backup_manifest` (another system's, or unusable).
    case summarizeWalOff(String)
    case walSummariesMissing(String)
    case parentManifestRefused(String)

    /// Every code `code` returns (docs/errors.md lists each; a test checks it).
    public static let codes: [String] = [
        "invalid-name", "repo-not-initialised", "file-io", "invalid-wal", "archive-mismatch", "repo-io", "not-found",
        "object-corrupt", "checksum-mismatch", "config", "postgres", "timeout", "refused",
        "absence-unconfirmed", "planned-segment-missing", "usage", "pg-binaries-missing",
        "cipher-key", "object-tampered", "retention-unset", "lease-held",
        "credentials",
        "no-parent-backup", "chain-damaged",
        "summarize-wal-off", "wal-summaries-missing", "parent-manifest-refused",
    ]

    /// Stable, searchable code.
    public var code: String {
        switch self {
        case .invalidName: return "invalid-name"
        case .notInitialised: return "repo-not-initialised"
        case .file: return "file-io"
        case .invalidWAL: return "invalid-wal"
        case .archiveMismatch: return "archive-mismatch"
        case .store(let e):
            if case .notFound = e { return "not-found" }
            if case .credentials = e { return "credentials" }
            return "repo-io"
        case .codec: return "object-corrupt"
        case .checksumMismatch: return "checksum-mismatch"
        case .configuration: return "config"
        case .postgres: return "postgres"
        case .timeout: return "timeout"
        case .refused: return "refused"
        case .absenceUnconfirmed: return "absence-unconfirmed"
        case .plannedSegmentMissing: return "planned-segment-missing"
        case .usage: return "usage"
        case .serverBinariesMissing: return "pg-binaries-missing"
        case .cipher(let e): return e.code
        case .retentionUnset: return "retention-unset"
        case .leaseHeld: return "lease-held"
        case .noParentBackup: return "no-parent-backup"
        case .chainDamaged: return "chain-damaged"
        case .summarizeWalOff: return "summarize-wal-off"
        case .walSummariesMissing: return "wal-summaries-missing"
        case .parentManifestRefused: return "parent-manifest-refused"
        }
    }

    public var description: String {
        switch self {
        case .invalidName(let n):
            return "\"\(n)\" is not a WAL file name (expected a 24-hex-digit segment, .partial, TTTTTTTT.history or .backup file; no paths)"
        case .notInitialised(let r): return "repository \(r) is not initialised: run `walctl init --pgdata DIR` first"
        case .file(let op, let p, let e): return "cannot \(op) \(p): \(String(cString: strerror(e)))"
        case .invalidWAL(let f, let r): return "refusing \(f): \(r)"
        case .archiveMismatch(let n, let a, let b):
            return "\(n) is already archived with different content (archived crc32c \(a), this file \(b)): refusing to overwrite; check for a second cluster writing to this repository"
        case .store(let e): return e.description
        case .codec(let n, let e): return "\(n): \(e)"
        case .checksumMismatch(let n, let e, let a, let s, let es):
            return "\(n): restored bytes fail verification (crc32c \(a), \(s) bytes; archived crc32c \(e), \(es) bytes): the stored object is corrupt"
        case .configuration(let e): return e.description
        case .postgres(let m): return m
        case .timeout(let m): return m
        case .refused(let m): return m
        case .absenceUnconfirmed(let f, let r, let why):
            return "\(f) is not in repository \(r), but its absence is not proven: \(why); failing (exit 255) so recovery stops instead of ending here"
        case .plannedSegmentMissing(let f, let r, let p, let range):
            return "\(f) is missing from repository \(r) although it lies inside the planned range \(range) (\(p)): the repository is broken (deleted or lost objects), not at its end; failing (exit 255) so recovery stops instead of ending here"
        case .usage(let m): return m
        case .serverBinariesMissing(let m): return m
        case .cipher(let e): return e.description
        case .retentionUnset(let m): return m
        case .leaseHeld(let m): return m
        case .noParentBackup(let m), .chainDamaged(let m): return m
        case .summarizeWalOff(let m), .walSummariesMissing(let m), .parentManifestRefused(let m): return m
        }
    }

    /// The WalctlError an error thrown from below is reported as (a CipherError from the
    /// encrypted store carries its own code), nil for any other error.
    public static func from(_ error: Error) -> WalctlError? {
        if let w = error as? WalctlError { return w }
        if let c = error as? CipherError { return .cipher(c) }
        return nil
    }

    /// True when the failure may go away by retrying (network, server errors).
    public var isTransient: Bool {
        switch self {
        case .store(let e): return e.isTransient
        case .codec, .checksumMismatch: return true  // a body damaged in flight reads fine the next time
        case .absenceUnconfirmed, .plannedSegmentMissing: return true  // an unmounted volume may come back
        default: return false
        }
    }
}
