import Catalog
import Foundation
import Logging
import PGClient
import Storage
import WALFormat

/// The message of `summarize-wal-off` (docs/errors.md).
let summarizeWalAdvice = "set summarize_wal = on (reload), then take a full backup: incremental backups need WAL summaries from the parent's start"

/// PostgreSQL 17+: decides whether the incremental `type` asks for, on `parent`, can be taken with the
/// server's own incremental protocol (docs/backup.md, "Native incremental backups"). Returns the
/// parent's `backup_manifest` to upload, or nil when a full backup is taken instead
/// (`incremental-or-full`, logged at notice). Throws `summarize-wal-off`, `wal-summaries-missing`
/// or `no-parent-backup` for `--type incremental`.
///
/// Checked before anything starts: `summarize_wal` (SHOW); the parent's manifest in the repository;
/// and, when `pg_available_wal_summaries()` answers, that the summaries on the parent's timeline
/// cover the WAL from the parent's start LSN on without a gap. The server checks the same again when
/// the backup starts; its refusal is mapped by `nativeRefusal`.
func nativeIncrementalManifest(_ type: BackupTypeRequest, parent: BackupRecord, conn: PGConnection, currentTimeline: TimeLineID,
                               repository: Repository, logger: Logger) throws -> [UInt8]? {
    func fallBack(_ why: String, _ error: WalctlError) throws -> [UInt8]? {
        guard type == .incrementalOrFull else { throw error }
        logger.notice("backup: \(why): taking a full backup instead (--type incremental-or-full)")
        return nil
    }
    let summarize = try pg { try conn.show("summarize_wal") }
    guard summarize == "on" else {
        let why = "summarize_wal is off on \(conn.target)"
        return try fallBack(why, .summarizeWalOff("\(why): \(summarizeWalAdvice)"))
    }
    let (_, contents) = try BackupMetadata.read(label: parent.label, repository: repository)
    guard let object = contents.manifestObject,
          let manifest = try repository.store.get(key: BackupMetadata.prefix(label: parent.label) + object) else {
        let why = "backup \(parent.label) has no backup_manifest to build an incremental backup on"
        return try fallBack(why, .noParentBackup("\(why): take a full backup (with a manifest)"))
    }
    if parent.timeline == currentTimeline, let gap = try summaryGap(conn, timeline: parent.timeline, from: parent.startLSN) {
        let why = "the WAL summaries on timeline \(parent.timeline) do not cover the WAL from backup \(parent.label)'s start \(parent.startLSN) (\(gap))"
        return try fallBack(why, .walSummariesMissing("\(why): take a full backup (or ask for --type incremental-or-full); keep wal_summary_keep_time longer than the interval between backups"))
    }
    return manifest
}

/// Where the server's WAL summaries on `timeline` fail to cover `from` onwards, nil when they cover it
/// (or when `pg_available_wal_summaries()` cannot be asked: the server checks again).
func summaryGap(_ conn: PGConnection, timeline: TimeLineID, from: LSN) throws -> String? {
    let r: QueryResult
    do {
        r = try conn.query("SELECT start_lsn, end_lsn FROM pg_available_wal_summaries() WHERE tli = \(timeline) ORDER BY start_lsn")
    } catch {
        return nil
    }
    var ranges: [(LSN, LSN)] = []
    for i in 0..<r.rows.count {
        guard let s = r.value(i, "start_lsn").flatMap({ LSN($0) }), let e = r.value(i, "end_lsn").flatMap({ LSN($0) }) else { return nil }
        ranges.append((s, e))
    }
    // Summaries that reach `from` or later must follow each other without a gap from `from` on.
    // None yet: the summarizer has not reached `from` (the server waits for it) or keeps none: the
    // server decides.
    var cursor = from
    for (s, e) in ranges where e.value >= from.value {
        if s.value > cursor.value { return "no summary from \(cursor) to \(s)" }
        if e.value > cursor.value { cursor = e }
    }
    return nil
}

/// The walctl error for a server's refusal of `UPLOAD_MANIFEST` or `BASE_BACKUP (INCREMENTAL)`, nil when
/// `error` is not one.
func nativeRefusal(_ error: PGError, label: String, parent: String) -> WalctlError? {
    switch IncrementalRefusal.classify(error) {
    case .summarizationOff?:
        return .summarizeWalOff("backup \(label): PostgreSQL refused the incremental backup because summarize_wal is off: \(summarizeWalAdvice)")
    case .summariesMissing(let m)?:
        return .walSummariesMissing("backup \(label): PostgreSQL cannot build an incremental backup on \(parent): \(m); take a full backup (or ask for --type incremental-or-full)")
    case .manifestRejected(let m)?:
        return .parentManifestRefused("backup \(label): PostgreSQL refused the backup_manifest of \(parent): \(m); take a full backup")
    case nil:
        return nil
    }
}
