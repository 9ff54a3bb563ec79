/// The catalog schema. Version 5 (version 1 lacked `skipped_segment`; version 2 lacked the damage
/// columns of `segment` / `partial_segment` and `repository.checked_at`; version 3 lacked `drill`;
/// version 4 lacked `backup.type` / `backup.parent`, the backup chain). Integers everywhere: times are PostgreSQL microseconds since
/// 2000-01-01 (`PGTimestamp.microseconds`), LSNs are the 64-bit value stored as its int64 bit
/// pattern, timelines and segment numbers are plain integers.
///
/// Every table is keyed by `repo` first (one catalog file can describe several repositories), and
/// the hot tables are `WITHOUT ROWID`, clustered on their primary key, so every query is a B-tree
/// seek. See docs/catalog.md for the query-to-index map.
enum Schema {
    static let version: Int64 = 5

    /// Opening a catalog of an older version creates what is missing (every statement below is
    /// `IF NOT EXISTS`) and marks every repository in it incomplete: the older walctl did not record
    /// what the new tables hold (the safety valve's skip markers, for version 2), so readers rebuild
    /// it from the repository before they plan, exactly as after an interrupted rebuild.
    static let upgrade = "UPDATE repository SET rebuilt_at=NULL"

    /// Columns added by version 3 to tables that already exist in a version 1 or 2 file (`CREATE
    /// TABLE IF NOT EXISTS` does not add columns): added when missing, before `create`, whose
    /// indexes use them. The file is then marked incomplete (`upgrade`), and the rebuild restores
    /// the damage columns from the metas' summaries.
    static let addedInVersion3: [(table: String, column: String, type: String)] = [
        ("segment", "damaged_lsn", "INTEGER"), ("segment", "damage", "TEXT"),
        ("partial_segment", "damaged_lsn", "INTEGER"), ("partial_segment", "damage", "TEXT"),
        ("repository", "checked_at", "INTEGER"),
    ]

    /// Columns added by version 5 (the backup chain, docs/backup.md): added when missing like
    /// version 3's; the rebuild that follows fills them from each `backup.json`.
    static let addedInVersion5: [(table: String, column: String, type: String)] = [
        ("backup", "type", "TEXT NOT NULL DEFAULT 'full'"), ("backup", "parent", "TEXT"),
    ]

    /// The columns of `segment` and `partial_segment`: one row per archived (partial) segment.
    static let segmentColumns = """
        repo INTEGER NOT NULL,
        timeline INTEGER NOT NULL,
        segno INTEGER NOT NULL,
        size INTEGER NOT NULL,
        stored_size INTEGER NOT NULL,
        codec TEXT NOT NULL,
        crc32c INTEGER NOT NULL,
        archived_at INTEGER NOT NULL,
        first_commit INTEGER,
        last_commit INTEGER,
        first_xact INTEGER,
        last_xact INTEGER,
        commits INTEGER NOT NULL,
        aborts INTEGER NOT NULL,
        restore_points INTEGER NOT NULL,
        ends_with_switch INTEGER NOT NULL,
        first_lsn INTEGER,
        last_lsn INTEGER,
        reach INTEGER,
        damaged_lsn INTEGER,
        damage TEXT,
        PRIMARY KEY(repo, timeline, segno)
    """

    static let create = """
    CREATE TABLE IF NOT EXISTS repository(
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        system_identifier TEXT,
        segment_size INTEGER NOT NULL,
        rebuilt_at INTEGER,
        rebuild_started_at INTEGER,
        checked_at INTEGER
    );
    CREATE TABLE IF NOT EXISTS segment(
    \(segmentColumns)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS segment_reach ON segment(repo, timeline, reach);
    CREATE INDEX IF NOT EXISTS segment_archived ON segment(repo, archived_at);
    CREATE INDEX IF NOT EXISTS segment_damaged ON segment(repo, timeline, segno) WHERE damaged_lsn IS NOT NULL;
    CREATE TABLE IF NOT EXISTS partial_segment(
    \(segmentColumns)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS run(
        repo INTEGER NOT NULL,
        timeline INTEGER NOT NULL,
        first_segno INTEGER NOT NULL,
        last_segno INTEGER NOT NULL,
        PRIMARY KEY(repo, timeline, first_segno)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS timeline_stats(
        repo INTEGER NOT NULL,
        timeline INTEGER NOT NULL,
        segments INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        PRIMARY KEY(repo, timeline)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS restore_point(
        repo INTEGER NOT NULL,
        timeline INTEGER NOT NULL,
        lsn INTEGER NOT NULL,
        segno INTEGER NOT NULL,
        name TEXT NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY(repo, timeline, lsn)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS restore_point_name ON restore_point(repo, name);
    CREATE INDEX IF NOT EXISTS restore_point_segment ON restore_point(repo, timeline, segno);
    CREATE TABLE IF NOT EXISTS archived_file(
        repo INTEGER NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        timeline INTEGER NOT NULL,
        start_lsn INTEGER,
        size INTEGER NOT NULL,
        stored_size INTEGER NOT NULL,
        codec TEXT NOT NULL,
        crc32c INTEGER NOT NULL,
        archived_at INTEGER NOT NULL,
        PRIMARY KEY(repo, name)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS timeline_history(
        repo INTEGER NOT NULL,
        timeline INTEGER NOT NULL,
        position INTEGER NOT NULL,
        parent INTEGER NOT NULL,
        switch_lsn INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY(repo, timeline, position)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS backup(
        repo INTEGER NOT NULL,
        label TEXT NOT NULL,
        timeline INTEGER NOT NULL,
        start_lsn INTEGER NOT NULL,
        stop_lsn INTEGER NOT NULL,
        start_time INTEGER NOT NULL,
        stop_time INTEGER NOT NULL,
        status TEXT NOT NULL,
        record TEXT NOT NULL,
        type TEXT NOT NULL DEFAULT 'full',
        parent TEXT,
        PRIMARY KEY(repo, label)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS backup_stop ON backup(repo, timeline, stop_time);
    CREATE INDEX IF NOT EXISTS backup_parent ON backup(repo, parent) WHERE parent IS NOT NULL;
    CREATE TABLE IF NOT EXISTS skipped_segment(
        repo INTEGER NOT NULL,
        timeline INTEGER NOT NULL,
        segno INTEGER NOT NULL,
        reason TEXT NOT NULL,
        skipped_at INTEGER NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY(repo, timeline, segno)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS drill(
        repo INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        passed INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY(repo, started_at)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS drill_passed ON drill(repo, passed, started_at);
    """
}
