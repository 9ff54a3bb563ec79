import WALFormat

/// Queries the recovery planner (issue 7) needs beyond the general ones in Queries.swift.
extension Catalog {
    /// Count, original bytes and stored bytes of the archived segments `from...to` of `timeline`
    /// (one primary-key range scan).
    public func segmentSizes(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws(CatalogError) -> (segments: Int64, bytes: Int64, storedBytes: Int64) {
        guard from <= to else { return (0, 0, 0) }
        let s = try conn.prepare("SELECT count(*), coalesce(sum(size),0), coalesce(sum(stored_size),0) FROM segment WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ?")
        try s.bind([.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: from)), .int(Int64(bitPattern: min(to, XLogSegNo(Int64.max))))])
        defer { s.reset() }
        guard try s.step() else { return (0, 0, 0) }
        return (s.int64(0), s.int64(1), s.int64(2))
    }

    /// The latest commit-or-abort time archived along `path` in segments up to `segno` (the
    /// running maximum `reach`), or nil when there is none.
    public func latestXactTime(on path: TimelinePath, upTo segno: XLogSegNo) throws(CatalogError) -> PGTimestamp? {
        try read { () throws(CatalogError) -> PGTimestamp? in try latestReach(path: path, upTo: segno) }
    }
}
