import Foundation
import Storage
import WALFormat
import Logging

/// The opt-in safety valve: when the archive has been failing or hanging so long that `pg_wal`
/// threatens to fill the disk, report files as archived WITHOUT storing them, so the primary keeps
/// running, and record the gap: PITR is broken across every skipped file.
///
/// Settings (both off by default): `archive-push-queue-max` (bytes of WAL waiting in `.ready`
/// files) and `archive-push-max-age` (seconds the file being archived has waited since PostgreSQL
/// marked it ready). Exceeding a limit is necessary, not sufficient: a file is let go only after
/// its own push failed for a reason the valve covers (`mayLetGo`) or did not complete within
/// `archive-push-timeout` (AsyncArchive). A healthy repository that keeps up never causes a skip.
public struct ValvePolicy: Equatable, Sendable {
    public var queueMax: Int64?
    public var maxAge: TimeInterval?

    public init(queueMax: Int64? = nil, maxAge: TimeInterval? = nil) { self.queueMax = queueMax; self.maxAge = maxAge }

    public init(config: Configuration) throws {
        queueMax = try config.int(.archivePushQueueMax).flatMap { $0 > 0 ? Int64($0) : nil }
        maxAge = try config.int(.archivePushMaxAge).flatMap { $0 > 0 ? TimeInterval($0) : nil }
    }

    public var enabled: Bool { queueMax != nil || maxAge != nil }

    /// The reason to let the file go, or nil to keep trying. `readyBytes` is the WAL waiting in
    /// `.ready` files (this one included); `age` is how long this file has waited.
    public func decide(readyBytes: Int64, age: TimeInterval) -> String? {
        if let q = queueMax, readyBytes > q {
            return "archive backlog \(readyBytes) bytes exceeds archive-push-queue-max \(q)"
        }
        if let a = maxAge, age > a {
            return "waited \(Int(age)) s since it was ready, more than archive-push-max-age \(Int(a))"
        }
        return nil
    }

    /// Error codes the valve never lets a file go for: they are not the repository being down but
    /// a file or a configuration that is wrong, and exit 0 would hide them (an archive-mismatch is
    /// a second cluster or a forked timeline writing to this repository).
    public static let neverLetGo: Set<String> = ["archive-mismatch", "invalid-wal", "invalid-name", "config"]

    /// Whether a push that failed with `error` may be let go (when the limits are exceeded).
    public static func mayLetGo(after error: Error) -> Bool {
        if let w = error as? WalctlError { return !neverLetGo.contains(w.code) }
        if error is ConfigurationError { return false }
        if let a = error as? AsyncError { return mayLetGo(afterMessage: a.reason) }
        return true
    }

    /// The same for a failure reported as text, `[code] message` (the pusher's `.error` result).
    public static func mayLetGo(afterMessage message: String) -> Bool {
        guard message.hasPrefix("["), let close = message.firstIndex(of: "]") else { return true }
        return !neverLetGo.contains(String(message[message.index(after: message.startIndex)..<close]))
    }

    /// Looks at `pg_wal` now and decides for `name`.
    public func check(walDir: String, name: String, now: Date = Date()) -> String? {
        guard enabled else { return nil }
        let ready = ReadyScanner.scan(walDir: walDir)
        let bytes = ready.reduce(Int64(0)) { $0 + $1.size }
        let since = ready.first(where: { $0.name == name })?.readySince
            ?? SpoolFS.fileInfo(walDir + "/archive_status/" + name + ".ready").map { Double($0.mtimeNs) / 1e9 }
        let age = since.map { max(0, now.timeIntervalSince1970 - $0) } ?? 0
        return decide(readyBytes: bytes, age: age)
    }
}

/// Lets a file go and records it: a durable local record first (the repository may be the very
/// thing that is down), then a marker object `<wal dir>/<name>.skipped` in the repository, tried for
/// a few seconds in the background and later by the pusher or the next push.
public enum SafetyValve {
    /// The repository key of the skip marker.
    public static func markerKey(_ name: WALFileName) -> String { RepositoryLayout.skipMarkerKey(name) }

    /// `skip` into the configured repository and catalog: what archive-push uses.
    public static func skip(name: String, size: Int64, reason: String, spool: ArchiveSpool, config: Configuration,
                            logger: Logger) {
        skip(name: name, size: size, reason: reason, spool: spool, openRepository: { try RepositoryFactory.open(config, logger: logger) },
             catalog: SkipCatalogRecorder(config: config), logger: logger)
    }

    /// Records the skip and logs it loudly (at warning). Never throws: the caller exits 0 in any
    /// case, because that is the whole point of the valve; a failure to record is logged as loudly.
    ///
    /// Order: the spool record and the catalog row (both local) first, then the repository marker.
    static func skip(name: String, size: Int64, reason: String, spool: ArchiveSpool,
                     openRepository: @escaping () throws -> Repository, catalog: SkipCatalogRecorder? = nil,
                     markerWait: TimeInterval = 3, logger: Logger) {
        logger.warning("WARNING: SAFETY VALVE: \(name) reported as archived WITHOUT being stored (\(reason)); point-in-time recovery across \(name) is no longer possible until a new base backup")
        var record = SkipRecord(name: name, reason: reason, skippedAt: PGTimestamp(date: Date()), size: size, markerStored: false)
        do {
            try spool.prepare()
            try spool.writeSkip(record)
        } catch {
            logger.warning("WARNING: SAFETY VALVE: could not record the skip of \(name) in \(spool.skippedDir): \(error)")
        }
        do {
            try catalog?.record(record)
        } catch {
            logger.warning("WARNING: SAFETY VALVE: could not record the skip of \(name) in the catalog: \(error)")
        }
        // The marker, bounded in time: the repository may hang, and the valve must not.
        let done = DispatchSemaphore(value: 0)
        let box = MarkerBox()
        let pending = record
        Thread.detachNewThread {
            box.ok = (try? storeMarker(pending, openRepository: openRepository)) ?? false
            done.signal()
        }
        if done.wait(timeout: .now() + markerWait) == .success, box.ok {
            record.markerStored = true
            try? spool.writeSkip(record)
        } else {
            logger.warning("WARNING: SAFETY VALVE: the repository did not take the skip marker for \(name) yet; it is kept in \(spool.skippedDir) and retried")
        }
    }

    final class MarkerBox: @unchecked Sendable { var ok = false }

    /// Writes the marker; when the file turns out to be archived after all (a hung push that
    /// completed), there is no gap and the record is dropped. Returns true when settled.
    static func storeMarker(_ record: SkipRecord, openRepository: () throws -> Repository) throws -> Bool {
        guard let name = WALFileName(record.name) else { return false }
        let repository = try openRepository()
        // Never into a repository that is not there (moved away, unmounted): a put would create a
        // stray one holding only the marker, and the record would count as stored.
        guard try repository.info() != nil else { return false }
        try repository.store.put(key: markerKey(name), bytes: SpoolFS.encode(record))
        return true
    }

    /// Retries the markers not yet stored; drops records of files that are archived after all.
    public static func flushPending(spool: ArchiveSpool, repository: Repository, logger: Logger) {
        guard (try? repository.info()) != nil else { return }   // not there (moved away, unmounted): next time
        for var r in spool.skipRecords() where !r.markerStored {
            guard let name = WALFileName(r.name) else { continue }
            do {
                if try repository.meta(for: name) != nil {
                    try? repository.store.delete(key: markerKey(name))
                    spool.removeSkip(r.name)
                    logger.warning("\(r.name) was skipped by the safety valve but its push completed after all: no gap")
                    continue
                }
                try repository.store.put(key: markerKey(name), bytes: SpoolFS.encode(r))
                r.markerStored = true
                try spool.writeSkip(r)
            } catch {
                return   // the repository is still unwell; next time
            }
        }
    }
}
