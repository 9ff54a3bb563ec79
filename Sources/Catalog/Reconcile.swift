import Foundation
import Storage
import WALFormat

/// Damaged WAL, from a segment's summary (`ArchivedFileMeta.summary`): records that fail their CRC,
/// or valid WAL that stops early inside a complete segment (not at an XLOG_SWITCH: a zeroed,
/// recycled or garbage tail). Replay stops at that LSN, so recovery cannot pass it; only a base
/// backup that starts after it makes the later WAL usable again.
public struct SegmentDamage: Equatable, Sendable {
    public var lsn: LSN
    public var reason: String

    /// The damage recorded in `summary`, nil when it is intact (or has no summary). A `.partial`
    /// segment legitimately ends early, so only CRC failures count for it.
    public static func of(_ summary: SegmentSummary?, segmentStart: LSN, partial: Bool) -> SegmentDamage? {
        guard let s = summary else { return nil }
        if s.crcFailures > 0 {
            let at = s.crcFailureLSNs.first ?? s.firstLSN ?? segmentStart
            return SegmentDamage(lsn: at, reason: "\(s.crcFailures) record\(s.crcFailures == 1 ? "" : "s") fail their CRC, the first at \(at)")
        }
        if !partial, let end = s.endOfWAL {
            return SegmentDamage(lsn: end, reason: "valid WAL ends at \(end) inside the segment (\(s.endOfWALReason ?? "no reason recorded"))")
        }
        return nil
    }
}

/// A segment whose WAL is damaged (see `SegmentDamage`).
public struct DamagedSegment: Codable, Equatable, Sendable {
    public var name: String
    public var timeline: TimeLineID
    public var segno: XLogSegNo
    public var lsn: LSN
    public var reason: String
    public init(name: String, timeline: TimeLineID, segno: XLogSegNo, lsn: LSN, reason: String) {
        self.name = name; self.timeline = timeline; self.segno = segno; self.lsn = lsn; self.reason = reason
    }
}

/// The data object of an archived history or backup-history file, as the catalog records it.
public struct ArchivedFileRecord: Equatable, Sendable {
    public var name: String
    public var codec: String
    public var crc32c: UInt32
    public var storedSize: Int64
}

/// Queries and updates for reconciling the catalog with the repository (`walctl verify`, `info`,
/// `recover`'s proof): ranges of rows, damage, and when the catalog was last checked.
extension Catalog {
    /// The complete segments `from...to` of `timeline`, ascending (one primary-key range scan).
    public func segments(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws(CatalogError) -> [SegmentRecord] {
        guard from <= to else { return [] }
        let s = try conn.prepare("SELECT \(Self.segmentColumns) FROM segment WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ? ORDER BY segno")
        try s.bind([.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: from)), .int(Int64(bitPattern: min(to, XLogSegNo(Int64.max))))])
        defer { s.reset() }
        var out: [SegmentRecord] = []
        while try s.step() { out.append(segmentRow(s, partial: false)) }
        return out
    }

    /// The `.partial` segments `from...to` of `timeline`, ascending.
    public func partialSegments(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws(CatalogError) -> [SegmentRecord] {
        guard from <= to else { return [] }
        let s = try conn.prepare("SELECT \(Self.segmentColumns) FROM partial_segment WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ? ORDER BY segno")
        try s.bind([.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: from)), .int(Int64(bitPattern: min(to, XLogSegNo(Int64.max))))])
        defer { s.reset() }
        var out: [SegmentRecord] = []
        while try s.step() { out.append(segmentRow(s, partial: true)) }
        return out
    }

    /// The history or backup-history file `name`, nil when not recorded.
    public func archivedFile(named name: String) throws(CatalogError) -> ArchivedFileRecord? {
        let s = try conn.prepare("SELECT codec, crc32c, stored_size FROM archived_file WHERE repo=? AND name=?")
        try s.bind([.int(repo), .text(name)])
        defer { s.reset() }
        guard try s.step() else { return nil }
        return ArchivedFileRecord(name: name, codec: s.text(0), crc32c: UInt32(truncatingIfNeeded: s.int64(1)), storedSize: s.int64(2))
    }

    /// Names of the archived files of `kind` (`history`, `backup-history`) on `timeline` (nil: all).
    public func archivedFileNames(kind: String, timeline: TimeLineID? = nil) throws(CatalogError) -> [String] {
        let s = try conn.prepare("SELECT name FROM archived_file WHERE repo=? AND kind=?\(timeline == nil ? "" : " AND timeline=?") ORDER BY name")
        try s.bind([.int(repo), .text(kind)] + (timeline.map { [.int(Int64($0))] } ?? []))
        defer { s.reset() }
        var out: [String] = []
        while try s.step() { out.append(s.text(0)) }
        return out
    }

    /// The complete segment with the highest (timeline, segment number), nil when none: one seek.
    public func newestSegment() throws(CatalogError) -> SegmentRecord? {
        let s = try conn.prepare("SELECT \(Self.segmentColumns) FROM segment WHERE repo=? ORDER BY timeline DESC, segno DESC LIMIT 1")
        try s.bind([.int(repo)])
        defer { s.reset() }
        return try s.step() ? segmentRow(s, partial: false) : nil
    }

    /// Damaged complete segments of `timeline` numbered `from...to` (the partial index
    /// `segment_damaged`: no scan of intact rows), ascending.
    public func damagedSegments(timeline: TimeLineID, from: XLogSegNo = 0, to: XLogSegNo = XLogSegNo(Int64.max)) throws(CatalogError) -> [DamagedSegment] {
        guard from <= to else { return [] }
        let s = try conn.prepare("""
            SELECT segno, damaged_lsn, damage FROM segment
            WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ? AND damaged_lsn IS NOT NULL ORDER BY segno
            """)
        try s.bind([.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: from)), .int(Int64(bitPattern: min(to, XLogSegNo(Int64.max))))])
        defer { s.reset() }
        var out: [DamagedSegment] = []
        while try s.step() {
            let segno = UInt64(bitPattern: s.int64(0))
            out.append(DamagedSegment(name: SegmentID(timeline: timeline, segno: segno).fileName(size: segmentSize), timeline: timeline,
                                      segno: segno, lsn: lsnFromDB(s.int64(1)), reason: s.textOrNil(2) ?? "damaged"))
        }
        return out
    }

    /// When the catalog was last reconciled with the repository (`walctl verify`, `catalog check`,
    /// a complete rebuild), nil when never.
    public func checkedAt() throws(CatalogError) -> PGTimestamp? {
        try conn.scalar("SELECT checked_at FROM repository WHERE id=?", [.int(repo)]).map { PGTimestamp(microseconds: $0) }
    }

    /// Records that the catalog was reconciled with the repository at `time`.
    public func markChecked(at time: PGTimestamp = PGTimestamp(date: Date())) throws(CatalogError) {
        try write { () throws(CatalogError) in
            try conn.prepare("UPDATE repository SET checked_at=? WHERE id=?").run([.int(time.microseconds), .int(repo)])
        }
    }

    /// Removes the row of a complete segment whose objects are gone from the repository (`walctl
    /// verify --repair`): its restore points, its counters, its run (split in two) and the `reach` of
    /// the segments after it are updated, so it becomes an ordinary gap.
    public func removeSegment(timeline: TimeLineID, segno: XLogSegNo) throws(CatalogError) {
        try write { () throws(CatalogError) in
            let exists = try conn.scalar("SELECT count(*) FROM segment WHERE repo=? AND timeline=? AND segno=?",
                                         [.int(repo), .int(Int64(timeline)), .int(Int64(bitPattern: segno))]) ?? 0
            guard exists > 0 else { return }
            // The same bookkeeping as expire's range removal (counters, run split, restore points, reach).
            try removeSegmentRows(timeline: timeline, from: segno, to: segno)
        }
    }

    /// Removes the row of a `.partial` segment, a history or a backup-history file whose meta is gone.
    public func removeArchivedFile(named name: String) throws(CatalogError) {
        try write { () throws(CatalogError) in
            switch WALFileName(name) {
            case .partial(let seg)?:
                guard let id = SegmentID(fileName: seg, size: segmentSize) else { return }
                try conn.prepare("DELETE FROM partial_segment WHERE repo=? AND timeline=? AND segno=?")
                    .run([.int(repo), .int(Int64(id.timeline)), .int(Int64(bitPattern: id.segno))])
            case .history(let tli)?:
                try conn.prepare("DELETE FROM archived_file WHERE repo=? AND name=?").run([.int(repo), .text(name)])
                try conn.prepare("DELETE FROM timeline_history WHERE repo=? AND timeline=?").run([.int(repo), .int(Int64(tli))])
            default:
                try conn.prepare("DELETE FROM archived_file WHERE repo=? AND name=?").run([.int(repo), .text(name)])
            }
        }
    }
}
