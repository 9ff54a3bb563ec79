import CSQLite
import WALFormat

/// What `walctl metrics` needs from the catalog beyond `info()`: the newest archived commit and the
/// newest recovery drills. Both are cheap: an index walk from the newest archive time backwards, and
/// two rows of the drill table.
public struct CatalogMetricsExtras: Equatable, Sendable {
    /// The newest commit time in archived WAL (of the most recently archived segment that has a
    /// commit), nil when no archived segment has one.
    public var lastArchivedCommit: PGTimestamp?
    /// The newest recovery drill (`walctl drill`), nil when none is recorded.
    public var lastDrill: DrillSummary?
    /// The newest drill that passed.
    public var lastPassedDrill: DrillSummary?
}

extension Catalog {
    /// The newest archived commit and the newest drills (`lastDrills()`).
    public func metricsExtras() throws(CatalogError) -> CatalogMetricsExtras {
        let drills = try lastDrills()
        return try read { () throws(CatalogError) -> CatalogMetricsExtras in
            // `segment_archived(repo, archived_at)` read backwards: stops at the first segment with a
            // commit, so the cost is the number of commit-less segments archived since the last commit.
            let t = try conn.scalar("""
                SELECT last_commit FROM segment WHERE repo=? AND last_commit IS NOT NULL
                ORDER BY archived_at DESC LIMIT 1
                """, [.int(repo)])
            return CatalogMetricsExtras(lastArchivedCommit: t.map { PGTimestamp(microseconds: $0) }, lastDrill: drills.last, lastPassedDrill: drills.lastPassed)
        }
    }
}
