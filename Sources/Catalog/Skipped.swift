import Storage
import WALFormat

/// The safety valve's gaps (docs/async.md): segments reported archived to PostgreSQL WITHOUT being
/// stored. The valve records its row (the catalog is local: this works while the repository is
/// down); `rebuild(from:)` restores the rows from the repository's `.skipped` markers. A segment row
/// always wins: a row is never written for an archived segment, and archiving a skipped segment
/// after all removes its row.
extension Catalog {
    /// Records that the safety valve let `record.name` go. Returns false, recording nothing, when the
    /// segment is archived (no gap) or the name is not a complete segment (a skipped history file
    /// is refused by the planner as `missing-history`; partial and backup history files are not
    /// read by recovery across a gap).
    ///
    /// - Throws: `.invalidInput` for a segment name that does not fit the segment size.
    @discardableResult
    public func recordSkipped(_ record: SkipRecord) throws(CatalogError) -> Bool {
        try write { () throws(CatalogError) -> Bool in try insertSkipped(record) }
    }

    func insertSkipped(_ r: SkipRecord) throws(CatalogError) -> Bool {
        guard case .segment(let s)? = WALFileName(r.name) else { return false }
        guard let id = SegmentID(fileName: s, size: segmentSize) else {
            throw .invalidInput("\(s) is not a valid segment name for \(segmentSize) segments")
        }
        let key: [SQLValue] = [.int(repo), .int(Int64(id.timeline)), .int(Int64(bitPattern: id.segno))]
        if try conn.scalar("SELECT 1 FROM segment WHERE repo=? AND timeline=? AND segno=?", key) != nil { return false }
        try conn.prepare("INSERT OR REPLACE INTO skipped_segment(repo, timeline, segno, reason, skipped_at, size) VALUES(?,?,?,?,?,?)")
            .run(key + [.text(r.reason), .int(r.skippedAt.microseconds), .int(r.size)])
        return true
    }

    /// Forgets a skip (the segment was archived after all and its marker dropped). Removing a name
    /// that is not recorded is not an error.
    public func removeSkipped(name: String) throws(CatalogError) {
        guard case .segment(let s)? = WALFileName(name), let id = SegmentID(fileName: s, size: segmentSize) else { return }
        try write { () throws(CatalogError) in
            try conn.prepare("DELETE FROM skipped_segment WHERE repo=? AND timeline=? AND segno=?")
                .run([.int(repo), .int(Int64(id.timeline)), .int(Int64(bitPattern: id.segno))])
        }
    }

    /// Every skipped segment, by timeline and segment number.
    public func skippedSegments() throws(CatalogError) -> [SkippedSegment] {
        try skippedRows("SELECT timeline, segno, reason, skipped_at, size FROM skipped_segment WHERE repo=? ORDER BY timeline, segno",
                        [.int(repo)])
    }

    /// The skipped segments of `timeline` numbered `from...to`, ascending (one primary-key range seek).
    public func skippedSegments(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws(CatalogError) -> [SkippedSegment] {
        guard from <= to else { return [] }
        return try skippedRows("""
            SELECT timeline, segno, reason, skipped_at, size FROM skipped_segment
            WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ? ORDER BY segno
            """, [.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: from)),
                  .int(Int64(bitPattern: min(to, XLogSegNo(Int64.max))))])
    }

    /// The skipped segments recovery would need in `from...to` along `path`, each looked for on the
    /// timeline that owns it (as `gaps(from:to:on:)` does).
    public func skippedSegments(from: XLogSegNo, to: XLogSegNo, on path: TimelinePath) throws(CatalogError) -> [SkippedSegment] {
        try read { () throws(CatalogError) -> [SkippedSegment] in
            var out: [SkippedSegment] = []
            for e in path {
                guard let r = segmentRange(e) else { continue }
                out += try skippedSegments(timeline: e.timeline, from: max(from, r.lowerBound), to: min(to, r.upperBound))
            }
            return out
        }
    }

    private func skippedRows(_ sql: String, _ binds: [SQLValue]) throws(CatalogError) -> [SkippedSegment] {
        let s = try conn.prepare(sql)
        try s.bind(binds)
        defer { s.reset() }
        var out: [SkippedSegment] = []
        while try s.step() {
            let id = SegmentID(timeline: TimeLineID(truncatingIfNeeded: s.int64(0)), segno: UInt64(bitPattern: s.int64(1)))
            out.append(SkippedSegment(name: id.fileName(size: segmentSize), timeline: id.timeline, segno: id.segno, reason: s.text(2),
                                      skippedAt: PGTimestamp(microseconds: s.int64(3)), size: s.int64(4)))
        }
        return out
    }
}
