import CSQLite
import WALFormat

/// What `walctl metrics` needs from the catalog beyond `info()`: the newest archived commit and the
/// newest recovery drill. Both are cheap: an index walk from the newest archive time backwards, and
/// one row of the drill table.
public struct CatalogMetricsExtras: Equatable, Sendable {
    /// The newest commit time in archived WAL (of the most recently archived segment that has a
    /// commit), nil when no archived segment has one.
    public var lastArchivedCommit: PGTimestamp?
    /// The newest recovery drill, nil when the catalog has no drill table or no drill in it.
    public var lastDrill: DrillSummary?
}

/// The newest row of the catalog's `drill` table (written by `walctl drill`).
public struct DrillSummary: Equatable, Sendable {
    /// When it finished (or started, when the table records only that).
    public var time: PGTimestamp?
    /// True when the drill passed; nil when the row does not say.
    public var passed: Bool?
    /// The measured recovery time objective in seconds; nil when the row does not say.
    public var rtoSeconds: Double?
}

extension Catalog {
    /// The newest archived commit and the newest drill, in one read snapshot.
    public func metricsExtras() throws(CatalogError) -> CatalogMetricsExtras {
        try read { () throws(CatalogError) -> CatalogMetricsExtras in
            // `segment_archived(repo, archived_at)` read backwards: stops at the first segment with a
            // commit, so the cost is the number of commit-less segments archived since the last commit.
            let t = try conn.scalar("""
                SELECT last_commit FROM segment WHERE repo=? AND last_commit IS NOT NULL
                ORDER BY archived_at DESC LIMIT 1
                """, [.int(repo)])
            return CatalogMetricsExtras(lastArchivedCommit: t.map { PGTimestamp(microseconds: $0) }, lastDrill: try newestDrill())
        }
    }

    /// The newest drill, read from a `drill` table when this catalog has one (another walctl
    /// version or `walctl drill` creates it). The columns are found by name, so the reader does not
    /// depend on that table's exact shape: a time (`finished_at`, `ended_at`, `completed_at`,
    /// `started_at`; PostgreSQL microseconds as everywhere in the catalog), a result (`passed` /
    /// `success` / `ok` as 0/1, or `result` / `status` / `outcome` as text: pass, passed, ok,
    /// success, succeeded are a pass) and an RTO (`rto_seconds`, `rto`; `rto_ms`, `rto_us`,
    /// `rto_microseconds` scaled). Rows are filtered by `repo` when the table has that column.
    func newestDrill() throws(CatalogError) -> DrillSummary? {
        guard try conn.scalar("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='drill'") ?? 0 > 0 else { return nil }
        let info = try conn.prepare("SELECT name FROM pragma_table_info('drill')")
        var columns = Set<String>()
        while try info.step() { columns.insert(info.text(0).lowercased()) }
        info.reset()
        func first(_ names: [String]) -> String? { names.first { columns.contains($0) } }
        let timeColumn = first(["finished_at", "ended_at", "completed_at", "stop_time", "started_at", "start_time", "time"])
        let boolColumn = first(["passed", "success", "ok"])
        let textColumn = boolColumn == nil ? first(["result", "status", "outcome"]) : nil
        let rto: (column: String, scale: Double)? = [("rto_seconds", 1.0), ("rto", 1.0), ("rto_ms", 1e-3), ("rto_us", 1e-6), ("rto_microseconds", 1e-6)]
            .first { columns.contains($0.0) }.map { (column: $0.0, scale: $0.1) }
        let select = [timeColumn ?? "NULL", boolColumn ?? textColumn ?? "NULL", rto?.column ?? "NULL"].joined(separator: ", ")
        let order = timeColumn.map { " ORDER BY \($0) DESC" } ?? ""
        let filter = columns.contains("repo") ? " WHERE repo=?" : ""
        let s = try conn.prepare("SELECT \(select) FROM drill\(filter)\(order) LIMIT 1")
        try s.bind(filter.isEmpty ? [] : [.int(repo)])
        defer { s.reset() }
        guard try s.step() else { return nil }
        var out = DrillSummary()
        out.time = s.int64OrNil(0).map { PGTimestamp(microseconds: $0) }
        if boolColumn != nil {
            out.passed = s.int64OrNil(1).map { $0 != 0 }
        } else if textColumn != nil, let word = s.textOrNil(1)?.lowercased() {
            out.passed = ["pass", "passed", "ok", "success", "succeeded", "complete", "completed"].contains(word)
        }
        if let rto, sqlite3_column_type(s.stmt, 2) != SQLITE_NULL {
            out.rtoSeconds = sqlite3_column_double(s.stmt, 2) * rto.scale
        }
        return out
    }
}
