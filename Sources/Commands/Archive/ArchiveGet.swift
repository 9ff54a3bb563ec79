import Foundation
import LocalFS
import Storage
import WALFormat
import Codec
import Planner
import Logging

/// The outcome of one archive-get.
public enum GetOutcome: Equatable {
    /// The file was restored to the target path, verified.
    case restored(ArchivedFileMeta)
    /// The file is not in the archive (PostgreSQL asks for such files all the time).
    case notFound
}

/// archive-get: fetch, decompress and verify one archived file, and write it to the target path
/// atomically (temporary name, fsync, rename), so PostgreSQL never sees a partial or corrupt file.
///
/// `.notFound` (exit 1: "end of archive" to PostgreSQL) is answered only with positive evidence
/// (docs/errors.md, "The exit-1 rule"): the file's meta is absent AND the repository's binding
/// (`repository.json`) was read and matches this cluster, AND the file is not a segment inside the
/// range `walctl recover` planned. The binding is read only when the meta is absent, so a hit costs
/// nothing more. Anything else is an error (retried, then exit 255).
public struct ArchiveGet {
    public var repository: Repository
    /// How long to keep retrying a failing repository before giving up.
    public var retryTime: TimeInterval
    /// The cluster's data directory when known (PostgreSQL runs restore_command there): its
    /// `global/pg_control` system identifier must equal the repository's binding.
    public var clusterDirectory: String?
    /// `walctl_recovery_plan.json` of the recovery in progress, when there is one: a segment inside
    /// its ranges that is absent is a broken repository, not the end of the archive.
    public var planPath: String?
    /// Each repository request and decision at debug level, a retried failure at info (`log-level`).
    public var logger: Logger
    /// fsync the restored file before the rename (`archive-get-fsync`; restore_command leaves it to
    /// PostgreSQL, docs/recovery.md).
    public var fsync = true

    public init(repository: Repository, retryTime: TimeInterval, logger: Logger = WalctlLog.silent,
                clusterDirectory: String? = nil, planPath: String? = nil) {
        self.repository = repository; self.retryTime = retryTime; self.logger = logger
        self.clusterDirectory = clusterDirectory; self.planPath = planPath
    }

    /// The data directory and plan for a restore_command run in `directory` (PostgreSQL's cwd is
    /// PGDATA): the directory when it holds `global/pg_control`, the plan when it exists there.
    public static func recoveryContext(directory: String) -> (clusterDirectory: String?, planPath: String?) {
        var st = stat()
        let cluster = stat(directory + "/global/pg_control", &st) == 0 ? directory : nil
        let plan = directory + "/" + RecoveryFiles.plan
        return (cluster, cluster != nil && stat(plan, &st) == 0 ? plan : nil)
    }

    /// Restores `fileName` (`%f`: a bare name, never a path) to `targetPath` (`%p`).
    public func get(fileName: String, targetPath: String) throws -> GetOutcome {
        guard let name = WALFileName(fileName) else { throw WalctlError.invalidName(fileName) }
        let deadline = Date().addingTimeInterval(retryTime)
        var attempt = 0
        while true {
            do {
                let outcome = try attemptGet(name: name, targetPath: targetPath)
                if outcome == .notFound {
                    // The end of the archive (and the history probes at a recovery's start): once
                    // or a few times per recovery, the moment to remove what killed calls left.
                    for path in LocalFS.removeAbandonedTemporaries(of: targetPath) {
                        logger.info("removed \(path), left by an archive-get that was killed while writing it")
                    }
                }
                return outcome
            } catch let e as WalctlError where e.isTransient && Date() < deadline {
                attempt += 1
                let delay = min(5.0, 0.1 * pow(2.0, Double(min(attempt, 6)))) * Double.random(in: 0.5...1.0)
                // info, not warning: a failure that outlasts the retries ends in one error line.
                logger.info("\(name): \(e) (retrying in \(String(format: "%.1f", delay)) s)")
                Thread.sleep(forTimeInterval: delay)
            }
        }
    }

    func attemptGet(name: WALFileName, targetPath: String) throws -> GetOutcome {
        let meta: ArchivedFileMeta
        do {
            logger.debug("GET \(repository.url)/\(RepositoryLayout.metaKey(name))")
            guard let m = try repository.meta(for: name) else {
                try confirmAbsent(name)
                logger.debug("\(name): not archived in a healthy repository bound to this cluster: exit 1 (not found)")
                return .notFound
            }
            meta = m
        } catch let e as StoreError {
            throw WalctlError.store(e)
        }
        let out = try AtomicFile(path: targetPath, durable: fsync)
        do {
            logger.debug("GET \(repository.url)/\(meta.objectKey ?? "?") (\(meta.storedSize) bytes, \(meta.codec))")
            try ObjectReader(repository: repository).restore(meta, to: out)
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
        logger.debug("\(name): restored and verified (crc32c \(meta.crc32c), \(meta.size) bytes)")
        return .restored(meta)
    }

    /// The positive evidence that `name` is absent from the right, healthy repository; throws
    /// `absenceUnconfirmed` or `plannedSegmentMissing` otherwise.
    func confirmAbsent(_ name: WALFileName) throws {
        let file = name.description
        logger.debug("\(file): no meta; GET \(repository.url)/\(RepositoryLayout.infoKey) to confirm the repository")
        let info: RepositoryInfo?
        do { info = try repository.info() } catch let e as StoreError {
            throw WalctlError.absenceUnconfirmed(file: file, repository: repository.url, reason: "its binding \(RepositoryLayout.infoKey) cannot be read: \(e)")
        }
        guard let info else {
            throw WalctlError.absenceUnconfirmed(file: file, repository: repository.url,
                reason: "it has no \(RepositoryLayout.infoKey) (repository missing, unmounted, mistyped or never initialised)")
        }
        if let dir = clusterDirectory {
            let control = dir + "/global/pg_control"
            guard let sysid = Self.systemIdentifier(pgControl: control) else {
                throw WalctlError.absenceUnconfirmed(file: file, repository: repository.url, reason: "cannot read the system identifier in \(control)")
            }
            guard sysid == info.systemID else {
                throw WalctlError.absenceUnconfirmed(file: file, repository: repository.url,
                    reason: "it is bound to database system \(info.systemIdentifier), this cluster (\(control)) is \(sysid): wrong repository")
            }
        }
        if let planPath, case .segment = name, let size = info.segmentSize, let id = SegmentID(fileName: file, size: size) {
            guard let bytes = FileManager.default.contents(atPath: planPath), let plan = try? JSONDecoder().decode(RecoveryPlan.self, from: bytes) else {
                throw WalctlError.absenceUnconfirmed(file: file, repository: repository.url, reason: "the recovery plan \(planPath) cannot be read")
            }
            for r in plan.segmentRanges where r.timeline == id.timeline && r.firstSegno <= id.segno && id.segno <= r.lastSegno {
                throw WalctlError.plannedSegmentMissing(file: file, repository: repository.url, planPath: planPath, range: r.firstName + ".." + r.lastName)
            }
        }
    }

    /// `ControlFileData.system_identifier`: the first 8 bytes of `global/pg_control`, little-endian
    /// (the same on every version walctl supports; `pg_controldata` prints it as "Database system identifier").
    public static func systemIdentifier(pgControl path: String) -> UInt64? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var v: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &v) { read(fd, $0.baseAddress, 8) }
        return n == 8 ? UInt64(littleEndian: v) : nil
    }
}
