import CSQLite
import Foundation
import LocalFS
import Storage
import WALFormat

/// The local index of one repository's archive: segments with their time summaries, restore
/// points, timeline histories, backup-history files and base backups, in a SQLite file.
///
/// The repository is the source of truth: walctl stores an object (and its `.meta`) first and
/// records it here afterwards, and `rebuild(from:)` recreates everything from the repository alone.
///
/// One `Catalog` is one SQLite connection: use it from one thread at a time (open one per thread).
/// Any number of processes may read while one writes (WAL journal mode, busy timeout, retries).
public final class Catalog {
    /// The catalog file.
    public let path: String
    /// The repository this instance reads and writes (the key of its rows).
    public let repositoryURL: String
    public let segmentSize: WALSegmentSize
    /// The schema version this build writes (`PRAGMA user_version`).
    public static let schemaVersion = Int(Schema.version)
    /// How long one statement waits for another process's lock before retrying.
    public static let busyTimeoutMilliseconds: Int32 = 5_000
    /// How many times a write transaction is retried after a busy timeout.
    public static let busyRetries = 3

    let conn: SQLiteConnection
    let repo: Int64

    /// The catalog path walctl uses: `WALCTL_CATALOG` from the environment, else the `catalog`
    /// setting, else `/var/lib/walctl/catalog.db`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment,
                                   setting: String? = nil) -> String {
        if let e = environment["WALCTL_CATALOG"], !e.isEmpty { return e }
        if let s = setting, !s.isEmpty { return s }
        return "/var/lib/walctl/catalog.db"
    }

    /// Opens (creating when missing: the file, its schema, and the repository's row) the catalog at
    /// `path` for repository `repositoryURL`.
    ///
    /// - Parameters:
    ///   - systemIdentifier: the repository's database system (decimal); recorded, and checked
    ///     against an existing row for this URL.
    ///   The parent directory must exist: walctl never creates it (its owner decides who may use the
    ///   catalog; the error names `install -d -o postgres -m 700 DIR`). The file, and so SQLite's
    ///   `-wal` and `-shm` beside it (SQLite gives them the database file's mode), are 0600.
    ///   - durability: `synchronous` setting of this connection (see `Durability`).
    /// - Throws: `CatalogError.repositoryMismatch` when the URL is already recorded with another
    ///   segment size or system, `.newerSchema`, `.cannotOpen`, `.corrupt`, `.busy`.
    /// How hard a commit waits for the disk.
    public enum Durability: String, Sendable {
        /// `synchronous=NORMAL` (the default): a commit survives a crash of any process; an OS crash
        /// or power loss may drop the last commits (never corrupts), which `check` then reports.
        case normal
        /// `synchronous=FULL`: every commit is fsynced and survives power loss too (about one more
        /// fsync per archive-push).
        case full
    }

    public init(path: String, repositoryURL: String, segmentSize: WALSegmentSize,
                systemIdentifier: String? = nil, durability: Durability = .normal) throws(CatalogError) {
        self.path = path
        self.repositoryURL = repositoryURL
        self.segmentSize = segmentSize
        try Self.preparePrivateFile(path)
        let conn = try SQLiteConnection(path: path, readOnly: false)
        self.conn = conn
        sqlite3_busy_timeout(conn.db, Self.busyTimeoutMilliseconds)
        // Per-connection settings (no I/O). NORMAL in WAL mode: a commit survives any process
        // crash (it is in the WAL file); only an OS crash can drop the last commits, which
        // `catalog check` finds and the repository still holds. See docs/catalog.md.
        try conn.exec("PRAGMA synchronous=\(durability == .full ? "FULL" : "NORMAL"); PRAGMA temp_store=MEMORY")
        // One walctl process per segment is always the last connection: without this, each would
        // checkpoint and delete the -wal on close and the next create it again, 4 fdatasyncs per
        // archive-push. Kept, the WAL is checkpointed by SQLite's auto-checkpoint (every ~1000
        // pages) in whichever process commits then. Same guarantee as NORMAL: a process crash
        // loses nothing, an OS crash at most the last commits (docs/architecture.md).
        _ = walctl_sqlite3_no_checkpoint_on_close(conn.db)
        let version = try conn.scalar("PRAGMA user_version") ?? 0
        if version > Schema.version {
            throw .newerSchema(path: path, found: Int(version), supported: Int(Schema.version))
        }
        if version < Schema.version { try Self.createSchema(conn) }
        repo = try Self.repositoryRow(conn, url: repositoryURL, segmentSize: segmentSize, systemIdentifier: systemIdentifier)
    }

    /// Refuses a missing directory, and creates the file itself 0600 (never through a symbolic link)
    /// before SQLite opens it: SQLite would create it 0644 and give its `-wal`/`-shm` the same mode. A
    /// catalog of this user's left looser by an older walctl is narrowed to 0600, with its `-wal`/`-shm`.
    private static func preparePrivateFile(_ path: String) throws(CatalogError) {
        do {
            try LocalFS.requireDirectory(LocalFS.directory(of: path), what: "the catalog directory")
            for p in [path, path + "-wal", path + "-shm"] {
                try LocalFS.makeFilePrivate(p, create: p == path)
            }
        } catch {
            throw .cannotOpen(path: path, message: error.description)
        }
    }

    private static func createSchema(_ conn: SQLiteConnection) throws(CatalogError) {
        // journal_mode cannot change inside a transaction; it is persistent in the file header.
        try retryingBusy { () throws(CatalogError) in
            let s = try conn.prepare("PRAGMA journal_mode=WAL")
            defer { s.reset() }
            if try s.step(), s.text(0).lowercased() != "wal" {
                throw .cannotOpen(path: conn.path, message: "the filesystem does not support SQLite WAL mode (got \(s.text(0))); put the catalog on a local filesystem")
            }
        }
        try retryingBusy { () throws(CatalogError) in
            try conn.exec("BEGIN IMMEDIATE")
            do throws(CatalogError) {
                let v = try conn.scalar("PRAGMA user_version") ?? 0
                if v < Schema.version {
                    let added = (v > 0 && v < 3 ? Schema.addedInVersion3 : []) + (v > 0 && v < 5 ? Schema.addedInVersion5 : [])
                    for c in added {
                        let info = try conn.prepare("SELECT count(*) FROM pragma_table_info('\(c.table)') WHERE name='\(c.column)'")
                        let present = try info.step() && info.int64(0) > 0
                        info.reset()
                        if !present { try conn.exec("ALTER TABLE \(c.table) ADD COLUMN \(c.column) \(c.type)") }
                    }
                    try conn.exec(Schema.create)
                    if v > 0 { try conn.exec(Schema.upgrade) }
                    try conn.exec("PRAGMA user_version=\(Schema.version)")
                }
                try conn.exec("COMMIT")
            } catch {
                try? conn.exec("ROLLBACK")
                throw error
            }
        }
    }

    private static func repositoryRow(_ conn: SQLiteConnection, url: String, segmentSize: WALSegmentSize,
                                      systemIdentifier: String?) throws(CatalogError) -> Int64 {
        func lookup() throws(CatalogError) -> Int64? {
            let s = try conn.prepare("SELECT id, segment_size, system_identifier FROM repository WHERE url=?")
            try s.bind([.text(url)])
            defer { s.reset() }
            guard try s.step() else { return nil }
            let id = s.int64(0)
            if UInt64(s.int64(1)) != segmentSize.bytes {
                throw .repositoryMismatch(path: conn.path, url: url, message: "recorded with \(s.int64(1))-byte segments, opened with \(segmentSize.bytes)")
            }
            if let sys = systemIdentifier, let recorded = s.textOrNil(2), recorded != sys {
                throw .repositoryMismatch(path: conn.path, url: url, message: "recorded for system \(recorded), opened for \(sys)")
            }
            return id
        }
        if let id = try lookup() {
            if let sys = systemIdentifier {
                // Fill in a system identifier first learnt now (no-op when already equal).
                _ = try? conn.scalar("UPDATE repository SET system_identifier=? WHERE id=? AND system_identifier IS NULL", [.text(sys), .int(id)])
            }
            return id
        }
        return try retryingBusy { () throws(CatalogError) -> Int64 in
            try conn.exec("BEGIN IMMEDIATE")
            do throws(CatalogError) {
                if let id = try lookup() { try conn.exec("COMMIT"); return id }
                try conn.prepare("INSERT INTO repository(url, system_identifier, segment_size) VALUES(?,?,?)")
                    .run([.text(url), systemIdentifier.map { .text($0) } ?? .null, .int(Int64(segmentSize.bytes))])
                let id = sqlite3_last_insert_rowid(conn.db)
                try conn.exec("COMMIT")
                return id
            } catch {
                try? conn.exec("ROLLBACK")
                throw error
            }
        }
    }

    /// Runs `body`, retrying when another process kept the database locked past the busy timeout.
    static func retryingBusy<T>(_ body: () throws(CatalogError) -> T) throws(CatalogError) -> T {
        var attempt = 0
        while true {
            do throws(CatalogError) {
                return try body()
            } catch {
                guard case .busy = error, attempt < busyRetries else { throw error }
                attempt += 1
                usleep(UInt32(10_000 * attempt))
            }
        }
    }

    /// Runs `body` in one write transaction (`BEGIN IMMEDIATE`), retried as a whole when busy.
    func write<T>(_ body: () throws(CatalogError) -> T) throws(CatalogError) -> T {
        try transaction("BEGIN IMMEDIATE", body)
    }

    /// Runs `body` in one read transaction, so multi-statement queries see one snapshot.
    func read<T>(_ body: () throws(CatalogError) -> T) throws(CatalogError) -> T {
        try transaction("BEGIN", body)
    }

    /// `begin`, `body`, COMMIT (ROLLBACK on error), retried as a whole when busy; inside an open
    /// transaction `body` just runs (the outer one commits).
    private func transaction<T>(_ begin: String, _ body: () throws(CatalogError) -> T) throws(CatalogError) -> T {
        if sqlite3_get_autocommit(conn.db) == 0 { return try body() }
        return try Self.retryingBusy { () throws(CatalogError) -> T in
            try conn.exec(begin)
            do throws(CatalogError) {
                let r = try body()
                try conn.exec("COMMIT")
                return r
            } catch {
                try? conn.exec("ROLLBACK")
                throw error
            }
        }
    }

    /// `PRAGMA integrity_check`: "ok", or the problems SQLite found.
    public func integrityCheck() throws(CatalogError) -> String {
        let s = try conn.prepare("PRAGMA integrity_check")
        defer { s.reset() }
        var lines: [String] = []
        while try s.step() { lines.append(s.text(0)) }
        return lines.joined(separator: "\n")
    }

    /// True when the catalog was built by a complete `rebuild(from:)` (or started empty on a new
    /// repository with `markComplete()`); false when it may miss files archived before it existed.
    /// walctl rebuilds automatically before planning when this is false.
    public func isComplete() throws(CatalogError) -> Bool {
        try conn.scalar("SELECT rebuilt_at FROM repository WHERE id=?", [.int(repo)]) != nil
    }

    /// Declares the catalog complete for this repository (used by `repository create`, where the
    /// repository is empty, and at the end of a rebuild).
    public func markComplete(at time: PGTimestamp = PGTimestamp(date: Date())) throws(CatalogError) {
        try write { () throws(CatalogError) in
            // A complete rebuild (or an empty new repository) is also a reconciliation with the repository.
            try conn.prepare("UPDATE repository SET rebuilt_at=?, checked_at=? WHERE id=?").run([.int(time.microseconds), .int(time.microseconds), .int(repo)])
        }
    }

    // MARK: - Recording

    /// Records one archived file from its meta: a segment, a `.partial` segment, a `.history` file
    /// or a `.backup` history file. Idempotent: the same name again replaces the row (same values:
    /// no change). One short write transaction.
    ///
    /// Call it after the data object and its `.meta` are stored.
    public func recordArchived(_ meta: ArchivedFileMeta) throws(CatalogError) {
        try write { () throws(CatalogError) in try insert(meta) }
    }

    /// Records many metas in one transaction (rebuild, bulk loads).
    public func recordArchived(_ metas: [ArchivedFileMeta]) throws(CatalogError) {
        try write { () throws(CatalogError) in for m in metas { try insert(m) } }
    }

    func insert(_ meta: ArchivedFileMeta) throws(CatalogError) {
        guard let name = WALFileName(meta.name) else {
            throw .invalidInput("\(meta.name) is not a WAL, history or backup history file name")
        }
        guard let crc = meta.checksum else {
            throw .invalidInput("the meta of \(meta.name) has a malformed crc32c \"\(meta.crc32c)\"")
        }
        switch name {
        case .segment(let s), .partial(let s):
            guard let id = SegmentID(fileName: s, size: segmentSize) else {
                throw .invalidInput("\(s) is not a valid segment name for \(segmentSize) segments")
            }
            if case .partial = name {
                try upsertSegmentRow(table: "partial_segment", id: id, meta: meta, crc: crc, reach: nil)
            } else {
                try insertSegment(id: id, meta: meta, crc: crc)
            }
        case .history(let tli):
            try upsertFile(name: meta.name, kind: "history", timeline: tli, startLSN: nil, meta: meta, crc: crc)
        case .backupHistory(let seg, let offset):
            guard let id = SegmentID(fileName: seg, size: segmentSize) else {
                throw .invalidInput("\(meta.name) names an invalid segment for \(segmentSize) segments")
            }
            let start = LSN.start(of: id.segno, size: segmentSize) + UInt64(offset)
            try upsertFile(name: meta.name, kind: "backup-history", timeline: id.timeline, startLSN: start, meta: meta, crc: crc)
        }
    }

    private func upsertFile(name: String, kind: String, timeline: TimeLineID, startLSN: LSN?,
                            meta: ArchivedFileMeta, crc: UInt32) throws(CatalogError) {
        try conn.prepare("""
            INSERT INTO archived_file(repo, name, kind, timeline, start_lsn, size, stored_size, codec, crc32c, archived_at)
            VALUES(?,?,?,?,?,?,?,?,?,?)
            ON CONFLICT(repo, name) DO UPDATE SET size=excluded.size, stored_size=excluded.stored_size,
              codec=excluded.codec, crc32c=excluded.crc32c, archived_at=excluded.archived_at
            """).run([.int(repo), .text(name), .text(kind), .int(Int64(timeline)), .opt(startLSN.map(dbLSN)),
                      .int(meta.size), .int(meta.storedSize), .text(meta.codec), .int(Int64(crc)),
                      .int(meta.archivedAt.microseconds)])
    }

    private func upsertSegmentRow(table: String, id: SegmentID, meta: ArchivedFileMeta, crc: UInt32, reach: Int64?) throws(CatalogError) {
        let s = meta.summary
        let damage = SegmentDamage.of(s, segmentStart: LSN.start(of: id.segno, size: segmentSize), partial: table == "partial_segment")
        let damagedLSN: Int64? = damage.map { dbLSN($0.lsn) }
        let damageText: SQLValue = damage.map { SQLValue.text($0.reason) } ?? SQLValue.null
        try conn.prepare("""
            INSERT OR REPLACE INTO \(table)(repo, timeline, segno, size, stored_size, codec, crc32c, archived_at,
              first_commit, last_commit, first_xact, last_xact, commits, aborts, restore_points, ends_with_switch,
              first_lsn, last_lsn, reach, damaged_lsn, damage)
            VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
            """).run([
                .int(repo), .int(Int64(id.timeline)), .int(Int64(bitPattern: id.segno)), .int(meta.size), .int(meta.storedSize),
                .text(meta.codec), .int(Int64(crc)), .int(meta.archivedAt.microseconds),
                .opt(s?.firstCommitTime?.microseconds), .opt(s?.lastCommitTime?.microseconds),
                .opt(s?.firstXactTime?.microseconds), .opt(s?.lastXactTime?.microseconds),
                .int(Int64(s?.commits ?? 0)), .int(Int64(s?.aborts ?? 0)), .int(Int64(s?.restorePoints.count ?? 0)),
                .int(s?.endsWithSwitch == true ? 1 : 0), .opt(s?.firstLSN.map(dbLSN)), .opt(s?.lastLSN.map(dbLSN)),
                .opt(reach), .opt(damagedLSN), damageText,
            ])
    }

    private func insertSegment(id: SegmentID, meta: ArchivedFileMeta, crc: UInt32) throws(CatalogError) {
        let tl = Int64(id.timeline), segno = Int64(bitPattern: id.segno)
        // The row as it was (for idempotency, stats and the reach chain).
        let old = try conn.prepare("SELECT last_xact, size, stored_size FROM segment WHERE repo=? AND timeline=? AND segno=?")
        try old.bind([.int(repo), .int(tl), .int(segno)])
        var existed = false, oldLastXact: Int64?, oldSize: Int64 = 0, oldStored: Int64 = 0
        if try old.step() { existed = true; oldLastXact = old.int64OrNil(0); oldSize = old.int64(1); oldStored = old.int64(2) }
        old.reset()

        // reach = running maximum of last_xact along the timeline (monotonic in segno), so that
        // "first segment whose last xact passes T" is one index seek (see firstSegment(reaching:)).
        // Commit times are not strictly in WAL order under concurrency: the segment's *latest*
        // commit/abort time (not the time of its last record) is what a time target is tested against.
        let lastXact = (meta.summary?.latestXactTime ?? meta.summary?.lastXactTime)?.microseconds
        let predReach = try conn.scalar(
            "SELECT reach FROM segment WHERE repo=? AND timeline=? AND segno<? ORDER BY segno DESC LIMIT 1",
            [.int(repo), .int(tl), .int(segno)])
        let reach = maxOpt(predReach, lastXact)
        try upsertSegmentRow(table: "segment", id: id, meta: meta, crc: crc, reach: reach)
        // Archived after all (a hung push that completed, a re-push): the segment row wins, no gap.
        try conn.prepare("DELETE FROM skipped_segment WHERE repo=? AND timeline=? AND segno=?").run([.int(repo), .int(tl), .int(segno)])
        if !existed || oldLastXact != lastXact { try propagateReach(timeline: tl, after: segno, from: reach) }

        // Restore points of this segment.
        try conn.prepare("DELETE FROM restore_point WHERE repo=? AND timeline=? AND segno=?").run([.int(repo), .int(tl), .int(segno)])
        for rp in meta.summary?.restorePoints ?? [] {
            try conn.prepare("INSERT OR REPLACE INTO restore_point(repo, timeline, lsn, segno, name, time) VALUES(?,?,?,?,?,?)")
                .run([.int(repo), .int(tl), .int(dbLSN(rp.lsn)), .int(segno), .text(rp.name), .int(rp.time.microseconds)])
        }

        // Per-timeline counters, and the run of contiguous segments this one extends.
        try conn.prepare("""
            INSERT INTO timeline_stats(repo, timeline, segments, bytes, stored_bytes) VALUES(?,?,?,?,?)
            ON CONFLICT(repo, timeline) DO UPDATE SET segments=segments+excluded.segments,
              bytes=bytes+excluded.bytes, stored_bytes=stored_bytes+excluded.stored_bytes
            """).run([.int(repo), .int(tl), .int(existed ? 0 : 1), .int(meta.size - oldSize), .int(meta.storedSize - oldStored)])
        if !existed { try extendRuns(timeline: tl, segno: segno) }
    }

    /// Rewrites `reach` of the rows after `segno` until a row's stored value is already right
    /// (then every later one is too). Appending in order touches no row.
    private func propagateReach(timeline tl: Int64, after segno: Int64, from reach: Int64?) throws(CatalogError) {
        var running = reach, cursor = segno
        while true {
            let s = try conn.prepare("SELECT segno, last_xact, reach FROM segment WHERE repo=? AND timeline=? AND segno>? ORDER BY segno LIMIT 512")
            try s.bind([.int(repo), .int(tl), .int(cursor)])
            var updates: [(Int64, Int64?)] = [], done = false, rows = 0
            while try s.step() {
                rows += 1
                let n = s.int64(0)
                let r = maxOpt(running, s.int64OrNil(1))
                if r == s.int64OrNil(2) { done = true; break }
                updates.append((n, r)); running = r; cursor = n
            }
            s.reset()
            for (n, r) in updates {
                try conn.prepare("UPDATE segment SET reach=? WHERE repo=? AND timeline=? AND segno=?").run([.opt(r), .int(repo), .int(tl), .int(n)])
            }
            if done || rows < 512 { return }
        }
    }

    private func extendRuns(timeline tl: Int64, segno: Int64) throws(CatalogError) {
        var left: (Int64, Int64)?
        let l = try conn.prepare("SELECT first_segno, last_segno FROM run WHERE repo=? AND timeline=? AND first_segno<=? ORDER BY first_segno DESC LIMIT 1")
        try l.bind([.int(repo), .int(tl), .int(segno)])
        if try l.step() { left = (l.int64(0), l.int64(1)) }
        l.reset()
        if let left, left.1 >= segno { return }   // already inside a run
        let rightLast = try conn.scalar("SELECT last_segno FROM run WHERE repo=? AND timeline=? AND first_segno=?",
                                        [.int(repo), .int(tl), .int(segno + 1)])
        let joinsLeft = left.map { $0.1 == segno - 1 } ?? false
        switch (joinsLeft, rightLast) {
        case (true, let r?):
            try conn.prepare("DELETE FROM run WHERE repo=? AND timeline=? AND first_segno=?").run([.int(repo), .int(tl), .int(segno + 1)])
            try conn.prepare("UPDATE run SET last_segno=? WHERE repo=? AND timeline=? AND first_segno=?").run([.int(r), .int(repo), .int(tl), .int(left!.0)])
        case (true, nil):
            try conn.prepare("UPDATE run SET last_segno=? WHERE repo=? AND timeline=? AND first_segno=?").run([.int(segno), .int(repo), .int(tl), .int(left!.0)])
        case (false, let r?):
            try conn.prepare("DELETE FROM run WHERE repo=? AND timeline=? AND first_segno=?").run([.int(repo), .int(tl), .int(segno + 1)])
            try conn.prepare("INSERT INTO run(repo, timeline, first_segno, last_segno) VALUES(?,?,?,?)").run([.int(repo), .int(tl), .int(segno), .int(r)])
        case (false, nil):
            try conn.prepare("INSERT INTO run(repo, timeline, first_segno, last_segno) VALUES(?,?,?,?)").run([.int(repo), .int(tl), .int(segno), .int(segno)])
        }
    }

    /// Records a timeline history (the parsed `.history` file). Replaces what was recorded for
    /// `history.timeline`. Call `recordArchived` for the file's meta as well.
    public func recordHistory(_ history: TimelineHistory) throws(CatalogError) {
        try write { () throws(CatalogError) in try insertHistory(history) }
    }

    func insertHistory(_ history: TimelineHistory) throws(CatalogError) {
        let tl = Int64(history.timeline)
        try conn.prepare("DELETE FROM timeline_history WHERE repo=? AND timeline=?").run([.int(repo), .int(tl)])
        for (i, e) in history.entries.enumerated() {
            try conn.prepare("INSERT INTO timeline_history(repo, timeline, position, parent, switch_lsn, reason) VALUES(?,?,?,?,?,?)")
                .run([.int(repo), .int(tl), .int(Int64(i)), .int(Int64(e.timeline)), .int(dbLSN(e.switchPoint)), .text(e.reason)])
        }
    }

    /// Records (or replaces, by label) a base backup.
    public func recordBackup(_ backup: BackupRecord) throws(CatalogError) {
        try write { () throws(CatalogError) in try insertBackup(backup) }
    }

    func insertBackup(_ b: BackupRecord) throws(CatalogError) {
        let json = String(decoding: try b.encoded(), as: UTF8.self)
        try conn.prepare("""
            INSERT OR REPLACE INTO backup(repo, label, timeline, start_lsn, stop_lsn, start_time, stop_time, status, record, type, parent)
            VALUES(?,?,?,?,?,?,?,?,?,?,?)
            """).run([.int(repo), .text(b.label), .int(Int64(b.timeline)), .int(dbLSN(b.startLSN)), .int(dbLSN(b.stopLSN)),
                      .int(b.startTime.microseconds), .int(b.stopTime.microseconds), .text(b.status.rawValue), .text(json),
                      .text(b.type.rawValue), b.parent.map { .text($0) } ?? .null])
    }

    /// Removes a backup's row (after expiry deleted its data).
    public func removeBackup(label: String) throws(CatalogError) {
        try write { () throws(CatalogError) in
            try conn.prepare("DELETE FROM backup WHERE repo=? AND label=?").run([.int(repo), .text(label)])
        }
    }
}

@inline(__always) func dbLSN(_ l: LSN) -> Int64 { Int64(bitPattern: l.value) }
@inline(__always) func lsnFromDB(_ v: Int64) -> LSN { LSN(UInt64(bitPattern: v)) }
@inline(__always) func maxOpt(_ a: Int64?, _ b: Int64?) -> Int64? {
    switch (a, b) {
    case let (x?, y?): return max(x, y)
    case let (x?, nil): return x
    case let (nil, y?): return y
    default: return nil
    }
}
