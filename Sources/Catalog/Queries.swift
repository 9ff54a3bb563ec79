import Foundation
import Storage
import WALFormat

extension Catalog {
    static let segmentColumns = """
        timeline, segno, size, stored_size, codec, crc32c, archived_at, first_commit, last_commit, first_xact,
        last_xact, commits, aborts, restore_points, ends_with_switch, first_lsn, last_lsn, damaged_lsn, damage
        """

    func segmentRow(_ s: Statement, partial: Bool) -> SegmentRecord {
        func ts(_ c: Int32) -> PGTimestamp? { s.int64OrNil(c).map { PGTimestamp(microseconds: $0) } }
        let id = SegmentID(timeline: TimeLineID(truncatingIfNeeded: s.int64(0)), segno: UInt64(bitPattern: s.int64(1)))
        let base = id.fileName(size: segmentSize)
        return SegmentRecord(
            timeline: id.timeline, segno: id.segno, partial: partial, name: partial ? base + ".partial" : base,
            size: s.int64(2), storedSize: s.int64(3), codec: s.text(4), crc32c: UInt32(truncatingIfNeeded: s.int64(5)),
            archivedAt: PGTimestamp(microseconds: s.int64(6)), firstCommitTime: ts(7), lastCommitTime: ts(8),
            firstXactTime: ts(9), lastXactTime: ts(10), commits: Int(s.int64(11)), aborts: Int(s.int64(12)),
            restorePoints: Int(s.int64(13)), endsWithSwitch: s.int64(14) != 0,
            firstLSN: s.int64OrNil(15).map(lsnFromDB), lastLSN: s.int64OrNil(16).map(lsnFromDB),
            damagedLSN: s.int64OrNil(17).map(lsnFromDB), damage: s.textOrNil(18))
    }

    /// The segment `(timeline, segno)` (a complete segment, or the `.partial` one when `partial`).
    public func segment(timeline: TimeLineID, segno: XLogSegNo, partial: Bool = false) throws(CatalogError) -> SegmentRecord? {
        let s = try conn.prepare("SELECT \(Self.segmentColumns) FROM \(partial ? "partial_segment" : "segment") WHERE repo=? AND timeline=? AND segno=?")
        try s.bind([.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: segno))])
        defer { s.reset() }
        return try s.step() ? segmentRow(s, partial: partial) : nil
    }

    /// The segment archived under `name` (`000000010000000000000003` or `...partial`), or nil.
    public func segment(named name: String) throws(CatalogError) -> SegmentRecord? {
        switch WALFileName(name) {
        case .segment(let s)?:
            guard let id = SegmentID(fileName: s, size: segmentSize) else { return nil }
            return try segment(timeline: id.timeline, segno: id.segno)
        case .partial(let s)?:
            guard let id = SegmentID(fileName: s, size: segmentSize) else { return nil }
            return try segment(timeline: id.timeline, segno: id.segno, partial: true)
        default:
            return nil
        }
    }

    /// The complete segment on `timeline` that holds byte `lsn`, or nil when it is not archived.
    public func segment(containing lsn: LSN, timeline: TimeLineID) throws(CatalogError) -> SegmentRecord? {
        try segment(timeline: timeline, segno: lsn.segment(size: segmentSize))
    }

    /// The segment numbers a path element owns: recovery reads segment `s` from the newest timeline
    /// whose begin segment is `<= s` (`XLogFileReadAnyTLI`), so the switch segment belongs to the child.
    /// nil when the element owns no segment.
    func segmentRange(_ e: (timeline: TimeLineID, begin: LSN, end: LSN?)) -> ClosedRange<XLogSegNo>? {
        let first = e.begin.segment(size: segmentSize)
        guard let end = e.end else { return first...XLogSegNo(Int64.max) }
        let endSeg = end.segment(size: segmentSize)
        guard endSeg > first else { return nil }
        return first...(endSeg - 1)
    }

    /// The first segment, in WAL order along `path`, holding a commit or abort with xact time after
    /// `target` (`inclusive`, PostgreSQL's default `recovery_target_inclusive=on`), or at or after it
    /// (`inclusive: false`): the segment where recovery to `target` stops, i.e. the last one it needs.
    /// nil when nothing archived on the path reaches `target` (recovery would fail with "recovery
    /// ended before configured recovery target was reached").
    ///
    /// One index seek per path element (the `reach` column is the running maximum of last xact
    /// time along each timeline, so it is monotonic in segment number).
    public func firstSegment(reaching target: PGTimestamp, on path: TimelinePath,
                             inclusive: Bool = true) throws(CatalogError) -> SegmentRecord? {
        let threshold = inclusive ? target.microseconds : target.microseconds - 1
        return try read { () throws(CatalogError) -> SegmentRecord? in
            for e in path {
                guard let range = segmentRange(e) else { continue }
                let tl = Int64(e.timeline)
                guard let hit = try conn.scalar(
                    "SELECT segno FROM segment WHERE repo=? AND timeline=? AND reach>? ORDER BY reach, segno LIMIT 1",
                    [.int(repo), .int(tl), .int(threshold)]) else { continue }
                let h = UInt64(bitPattern: hit)
                if h > range.upperBound { continue }
                if h >= range.lowerBound { return try segment(timeline: e.timeline, segno: h) }
                // This timeline passed the target before the path's part of it (not produced by
                // PostgreSQL's timeline rules, but handled): scan the element's range.
                if let n = try conn.scalar("""
                    SELECT segno FROM segment WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ? AND last_xact>?
                    ORDER BY segno LIMIT 1
                    """, [.int(repo), .int(tl), .int(Int64(bitPattern: range.lowerBound)),
                          .int(Int64(bitPattern: range.upperBound)), .int(threshold)]) {
                    return try segment(timeline: e.timeline, segno: UInt64(bitPattern: n))
                }
            }
            return nil
        }
    }

    /// The archived runs (no gap inside) of `timeline` overlapping `from...to`, in order.
    public func archivedRanges(timeline: TimeLineID, from: XLogSegNo = 0,
                               to: XLogSegNo = XLogSegNo(Int64.max)) throws(CatalogError) -> [SegmentRange] {
        let tl = Int64(timeline), lo = Int64(bitPattern: from), hi = Int64(bitPattern: to)
        var out: [SegmentRange] = []
        func add(_ f: Int64, _ l: Int64) {
            let a = UInt64(bitPattern: f), b = UInt64(bitPattern: l)
            out.append(SegmentRange(timeline: timeline, firstSegno: a, lastSegno: b,
                                    firstName: SegmentID(timeline: timeline, segno: a).fileName(size: segmentSize),
                                    lastName: SegmentID(timeline: timeline, segno: b).fileName(size: segmentSize)))
        }
        let s1 = try conn.prepare("SELECT first_segno, last_segno FROM run WHERE repo=? AND timeline=? AND first_segno<=? ORDER BY first_segno DESC LIMIT 1")
        try s1.bind([.int(repo), .int(tl), .int(lo)])
        if try s1.step(), s1.int64(1) >= lo { add(s1.int64(0), s1.int64(1)) }
        s1.reset()
        let s2 = try conn.prepare("SELECT first_segno, last_segno FROM run WHERE repo=? AND timeline=? AND first_segno>? AND first_segno<=? ORDER BY first_segno")
        try s2.bind([.int(repo), .int(tl), .int(lo), .int(hi)])
        while try s2.step() { add(s2.int64(0), s2.int64(1)) }
        s2.reset()
        return out
    }

    /// Segments missing from `from...to` (segment numbers, inclusive) along `path`: each segment
    /// number is looked for on the timeline that owns it on the path. Empty when recovery can read
    /// every segment of the range. Cost: one seek plus one row per archived run in the range.
    public func gaps(from: XLogSegNo, to: XLogSegNo, on path: TimelinePath) throws(CatalogError) -> [SegmentGap] {
        guard from <= to else { return [] }
        return try read { () throws(CatalogError) -> [SegmentGap] in
            var out: [SegmentGap] = []
            for e in path {
                guard let r = segmentRange(e) else { continue }
                let lo = max(from, r.lowerBound), hi = min(to, r.upperBound)
                guard lo <= hi else { continue }
                var next = lo
                for run in try archivedRanges(timeline: e.timeline, from: lo, to: hi) {
                    if run.firstSegno > next { out.append(gap(e.timeline, next, run.firstSegno - 1)) }
                    next = max(next, run.lastSegno &+ 1)
                    if next > hi || run.lastSegno == UInt64.max { break }
                }
                if next <= hi { out.append(gap(e.timeline, next, hi)) }
            }
            return out
        }
    }

    /// Gaps between the segments holding `from` and `to` (LSNs) along `path`.
    public func gaps(fromLSN: LSN, toLSN: LSN, on path: TimelinePath) throws(CatalogError) -> [SegmentGap] {
        try gaps(from: fromLSN.segment(size: segmentSize), to: toLSN.segment(size: segmentSize), on: path)
    }

    func gap(_ tl: TimeLineID, _ a: XLogSegNo, _ b: XLogSegNo) -> SegmentGap {
        SegmentGap(timeline: tl, firstSegno: a, lastSegno: b,
                   firstName: SegmentID(timeline: tl, segno: a).fileName(size: segmentSize),
                   lastName: SegmentID(timeline: tl, segno: b).fileName(size: segmentSize))
    }

    // MARK: Backups

    func backupRows(_ sql: String, _ binds: [SQLValue]) throws(CatalogError) -> [BackupRecord] {
        let s = try conn.prepare(sql)
        try s.bind(binds)
        defer { s.reset() }
        var out: [BackupRecord] = []
        while try s.step() {
            let json = s.text(0)
            out.append(try BackupRecord.decode(Array(json.utf8), key: "catalog row"))
        }
        return out
    }

    /// Every backup recorded for the repository, oldest stop time first.
    public func backups() throws(CatalogError) -> [BackupRecord] {
        try backupRows("SELECT record FROM backup WHERE repo=? ORDER BY stop_time, label", [.int(repo)])
    }

    /// The backup labelled `label`, or nil.
    public func backup(label: String) throws(CatalogError) -> BackupRecord? {
        try backupRows("SELECT record FROM backup WHERE repo=? AND label=?", [.int(repo), .text(label)]).first
    }

    /// The newest complete backup whose stop time is at or before `time` and that lies on `path`:
    /// taken on one of the path's timelines, starting at or after the element's begin and stopping
    /// at or before its end (the switch point to the next timeline). nil when there is none.
    ///
    /// PostgreSQL does not catch a target before the backup's end (pg-facts §5): pass a
    /// conservative `time` when stop times are whole seconds.
    public func newestBackup(stoppedAtOrBefore time: PGTimestamp, on path: TimelinePath) throws(CatalogError) -> BackupRecord? {
        try read { () throws(CatalogError) -> BackupRecord? in
            var best: BackupRecord?
            for e in path {
                let rows = try backupRows("""
                    SELECT record FROM backup WHERE repo=? AND timeline=? AND stop_time<=? AND status='complete'
                      AND start_lsn>=? AND stop_lsn<=? ORDER BY stop_time DESC LIMIT 1
                    """, [.int(repo), .int(Int64(e.timeline)), .int(time.microseconds), .int(dbLSN(e.begin)),
                          .int(e.end.map(dbLSN) ?? Int64.max)])
                if let b = rows.first, best.map({ $0.stopTime < b.stopTime }) ?? true { best = b }
            }
            return best
        }
    }

    /// The earliest complete backup on `path` (by stop time), or nil.
    func earliestBackup(on path: TimelinePath) throws(CatalogError) -> BackupRecord? {
        var best: BackupRecord?
        for e in path {
            let rows = try backupRows("""
                SELECT record FROM backup WHERE repo=? AND timeline=? AND status='complete'
                  AND start_lsn>=? AND stop_lsn<=? ORDER BY stop_time LIMIT 1
                """, [.int(repo), .int(Int64(e.timeline)), .int(dbLSN(e.begin)), .int(e.end.map(dbLSN) ?? Int64.max)])
            if let b = rows.first, best.map({ b.stopTime < $0.stopTime }) ?? true { best = b }
        }
        return best
    }

    // MARK: Timelines

    /// The recorded history of `timeline`, or nil when none was recorded (timeline 1 has none).
    public func history(of timeline: TimeLineID) throws(CatalogError) -> TimelineHistory? {
        let s = try conn.prepare("SELECT parent, switch_lsn, reason FROM timeline_history WHERE repo=? AND timeline=? ORDER BY position")
        try s.bind([.int(repo), .int(Int64(timeline))])
        defer { s.reset() }
        var entries: [TimelineHistoryEntry] = []
        while try s.step() {
            entries.append(TimelineHistoryEntry(timeline: TimeLineID(truncatingIfNeeded: s.int64(0)),
                                                switchPoint: lsnFromDB(s.int64(1)), reason: s.text(2)))
        }
        return entries.isEmpty ? nil : TimelineHistory(timeline: timeline, entries: entries)
    }

    /// The path to `timeline` from its recorded history; a single element when none is recorded.
    public func path(to timeline: TimeLineID) throws(CatalogError) -> TimelinePath {
        try history(of: timeline)?.path ?? [(timeline: timeline, begin: LSN(0), end: nil)]
    }

    /// Every timeline with archived segments or a recorded history, ascending.
    public func timelines() throws(CatalogError) -> [TimeLineID] {
        let s = try conn.prepare("""
            SELECT timeline FROM timeline_stats WHERE repo=? UNION SELECT DISTINCT timeline FROM timeline_history WHERE repo=?
            ORDER BY 1
            """)
        try s.bind([.int(repo), .int(repo)])
        defer { s.reset() }
        var out: [TimeLineID] = []
        while try s.step() { out.append(TimeLineID(truncatingIfNeeded: s.int64(0))) }
        return out
    }

    /// The largest last-xact time archived on `timeline` up to segment `segno` (nil: none).
    func reach(timeline: TimeLineID, atOrBefore segno: XLogSegNo) throws(CatalogError) -> PGTimestamp? {
        try conn.scalar("SELECT reach FROM segment WHERE repo=? AND timeline=? AND segno<=? ORDER BY segno DESC LIMIT 1",
                        [.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: segno))]).map { PGTimestamp(microseconds: $0) }
    }

    /// The last archived segment number of `timeline`, or nil.
    func lastSegno(timeline: TimeLineID) throws(CatalogError) -> XLogSegNo? {
        try conn.scalar("SELECT max(last_segno) FROM run WHERE repo=? AND timeline=?", [.int(repo), .int(Int64(timeline))])
            .map { UInt64(bitPattern: $0) }
    }

    /// The recoverable window of every timeline: from the earliest complete backup on its path to
    /// the latest commit-or-abort archived after it without a gap (see `RecoverableWindow`).
    public func recoverableWindows() throws(CatalogError) -> [RecoverableWindow] {
        try read { () throws(CatalogError) -> [RecoverableWindow] in
            var out: [RecoverableWindow] = []
            for tl in try timelines() {
                guard let last = try lastSegno(timeline: tl) else { continue }
                let path = try path(to: tl)
                let latest = try latestReach(path: path, upTo: last)
                guard let b = try earliestBackup(on: path) else {
                    out.append(RecoverableWindow(timeline: tl, backupLabel: nil, from: nil, to: nil,
                                                 latestArchivedXactTime: latest, gaps: []))
                    continue
                }
                let start = b.startLSN.segment(size: segmentSize)
                let gaps = try gaps(from: start, to: last, on: path)
                var to: PGTimestamp?
                if let g = gaps.first {
                    if g.firstSegno > start { to = try latestReach(path: path, upTo: g.firstSegno - 1) }
                } else {
                    to = try latestReach(path: path, upTo: last)
                }
                out.append(RecoverableWindow(timeline: tl, backupLabel: b.label, from: b.stopTime,
                                             to: to.flatMap { $0 > b.stopTime ? $0 : nil },
                                             latestArchivedXactTime: latest, gaps: gaps))
            }
            return out
        }
    }

    /// The window of one timeline, or nil when it has no archived segment.
    public func recoverableWindow(timeline: TimeLineID) throws(CatalogError) -> RecoverableWindow? {
        try recoverableWindows().first { $0.timeline == timeline }
    }

    /// Largest last-xact time on `path` up to segment `segno`.
    func latestReach(path: TimelinePath, upTo segno: XLogSegNo) throws(CatalogError) -> PGTimestamp? {
        var best: PGTimestamp?
        for e in path {
            guard let r = segmentRange(e), r.lowerBound <= segno else { continue }
            if let t = try reach(timeline: e.timeline, atOrBefore: min(segno, r.upperBound)), best.map({ $0 < t }) ?? true { best = t }
        }
        return best
    }

    // MARK: Restore points, last segment, counts

    /// Every restore point named `name` (PostgreSQL allows duplicates; recovery stops at the first
    /// on its path), ordered by timeline then LSN.
    public func restorePoints(named name: String) throws(CatalogError) -> [RestorePointRecord] {
        let s = try conn.prepare("SELECT timeline, lsn, segno, time FROM restore_point WHERE repo=? AND name=? ORDER BY timeline, lsn")
        try s.bind([.int(repo), .text(name)])
        defer { s.reset() }
        var out: [RestorePointRecord] = []
        while try s.step() {
            let tl = TimeLineID(truncatingIfNeeded: s.int64(0))
            out.append(RestorePointRecord(name: name, time: PGTimestamp(microseconds: s.int64(3)), lsn: lsnFromDB(s.int64(1)),
                                          timeline: tl, segmentName: SegmentID(timeline: tl, segno: UInt64(bitPattern: s.int64(2))).fileName(size: segmentSize)))
        }
        return out
    }

    /// The most recently archived complete segment (by archive time), or nil when none.
    public func lastArchivedSegment() throws(CatalogError) -> SegmentRecord? {
        let s = try conn.prepare("SELECT \(Self.segmentColumns) FROM segment WHERE repo=? ORDER BY archived_at DESC LIMIT 1")
        try s.bind([.int(repo)])
        defer { s.reset() }
        return try s.step() ? segmentRow(s, partial: false) : nil
    }

    /// Counts and sizes for `walctl info`, from counters (no scan of the segment table).
    public func counts() throws(CatalogError) -> CatalogCounts {
        try read { () throws(CatalogError) -> CatalogCounts in
            var c = CatalogCounts()
            let s = try conn.prepare("SELECT count(*), sum(segments), sum(bytes), sum(stored_bytes) FROM timeline_stats WHERE repo=?")
            try s.bind([.int(repo)])
            if try s.step() { c.segments = s.int64(1); c.walBytes = s.int64(2); c.walStoredBytes = s.int64(3) }
            s.reset()
            c.partialSegments = try conn.scalar("SELECT count(*) FROM partial_segment WHERE repo=?", [.int(repo)]) ?? 0
            c.historyFiles = try conn.scalar("SELECT count(*) FROM archived_file WHERE repo=? AND kind='history'", [.int(repo)]) ?? 0
            c.backupHistoryFiles = try conn.scalar("SELECT count(*) FROM archived_file WHERE repo=? AND kind='backup-history'", [.int(repo)]) ?? 0
            c.backups = try conn.scalar("SELECT count(*) FROM backup WHERE repo=?", [.int(repo)]) ?? 0
            c.restorePoints = try conn.scalar("SELECT count(*) FROM restore_point WHERE repo=?", [.int(repo)]) ?? 0
            c.timelines = Int64(try timelines().count)
            return c
        }
    }
}
