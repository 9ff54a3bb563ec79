/// Why a PostgreSQL 17+ server refused `UPLOAD_MANIFEST` or `BASE_BACKUP (INCREMENTAL)`, from its
/// error (the messages of src/backend/backup/basebackup_incremental.c and basebackup.c). Servers with
/// translated messages (`lc_messages` other than English) are not classified: their errors stay
/// plain `PGError`s.
public enum IncrementalRefusal: Equatable, Sendable {
    /// `summarize_wal` is off: "incremental backups cannot be taken unless WAL summarization is enabled".
    case summarizationOff
    /// The WAL summaries from the parent's start to this backup's start are gone, incomplete, or on a
    /// timeline history the server does not have ("WAL summaries are required on timeline ...",
    /// "manifest requires WAL from ... timeline ...").
    case summariesMissing(String)
    /// The uploaded manifest is not usable: another system's, version 1, or not a manifest.
    case manifestRejected(String)

    /// Classifies `error`; nil when it is not one of these refusals.
    public static func classify(_ error: PGError) -> IncrementalRefusal? {
        guard case .commandFailed(_, _, let raw) = error else { return nil }
        let m = raw.trimmedMessage
        if m.contains("incremental backups cannot be taken unless WAL summarization is enabled") {
            return .summarizationOff
        }
        if m.contains("WAL summaries are required on timeline") || m.contains("manifest requires WAL from") {
            return .summariesMissing(m)
        }
        if m.contains("system identifier in backup manifest") || m.contains("does not support incremental backup")
            || m.contains("manifest") && (m.contains("could not parse") || m.contains("parse") || m.contains("system identifier")) {
            return .manifestRejected(m)
        }
        return nil
    }
}
