import Catalog
import WALFormat

/// One archived segment, as much of it as planning needs.
public struct PlanningSegment: Equatable, Sendable {
    public var timeline: TimeLineID
    public var segno: XLogSegNo
    /// Original and stored (compressed) bytes.
    public var size: Int64
    public var storedSize: Int64
    /// First / last commit-or-abort time in the segment (what `recovery_target_time` is tested against).
    public var firstXactTime: PGTimestamp?
    public var lastXactTime: PGTimestamp?
    /// Start LSN of the first / last record that starts in the segment.
    public var firstLSN: LSN?
    public var lastLSN: LSN?

    public init(timeline: TimeLineID, segno: XLogSegNo, size: Int64, storedSize: Int64,
                firstXactTime: PGTimestamp? = nil, lastXactTime: PGTimestamp? = nil,
                firstLSN: LSN? = nil, lastLSN: LSN? = nil) {
        self.timeline = timeline; self.segno = segno; self.size = size; self.storedSize = storedSize
        self.firstXactTime = firstXactTime; self.lastXactTime = lastXactTime
        self.firstLSN = firstLSN; self.lastLSN = lastLSN
    }
}

/// A named restore point, located.
public struct PlanningRestorePoint: Equatable, Sendable {
    public var name: String
    public var time: PGTimestamp
    public var lsn: LSN
    public var timeline: TimeLineID
    public init(name: String, time: PGTimestamp, lsn: LSN, timeline: TimeLineID) {
        self.name = name; self.time = time; self.lsn = lsn; self.timeline = timeline
    }
}

/// Original and stored bytes of a run of segments.
public struct PlanningSizes: Equatable, Sendable {
    public var segments: Int64
    public var bytes: Int64
    public var storedBytes: Int64
    public init(segments: Int64 = 0, bytes: Int64 = 0, storedBytes: Int64 = 0) {
        self.segments = segments; self.bytes = bytes; self.storedBytes = storedBytes
    }
}

/// The read-only view of an archive the planner needs: a snapshot of the catalog.
///
/// `Catalog` conforms (below); tests use an in-memory fake. Every query is a question about what is
/// archived; none of them touches PostgreSQL or the repository's objects. Segment numbers are per
/// timeline: a path element `(tl, begin, end)` owns segments `seg(begin) ... seg(end) - 1` (the
/// switch segment belongs to the child timeline, as `XLogFileReadAnyTLI` reads it).
public protocol PlanningCatalog {
    /// The WAL segment size of the archive.
    var planningSegmentSize: WALSegmentSize { get }
    /// Every timeline with archived segments or a recorded history, ascending.
    func planningTimelines() throws -> [TimeLineID]
    /// The parsed `TTTTTTTT.history` of `timeline`, nil when none is archived (always nil for 1).
    func planningHistory(of timeline: TimeLineID) throws -> TimelineHistory?
    /// Every base backup recorded, any status.
    func planningBackups() throws -> [BackupRecord]
    /// The first segment along `path` holding a commit or abort with xact time `> target`
    /// (`>= target` when `inclusive` is false), or nil when none is archived.
    func planningFirstSegment(reaching target: PGTimestamp, on path: TimelinePath, inclusive: Bool) throws -> PlanningSegment?
    /// The archived segment `(timeline, segno)`, or nil.
    func planningSegment(timeline: TimeLineID, segno: XLogSegNo) throws -> PlanningSegment?
    /// The archived runs (no gap inside) of `timeline` overlapping `from...to`, ascending.
    func planningArchivedRuns(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> [ClosedRange<XLogSegNo>]
    /// Sizes of the archived segments `from...to` of `timeline`.
    func planningSizes(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> PlanningSizes
    /// The latest commit-or-abort time archived along `path` in segments `<= segno` (nil: none).
    func planningLatestXactTime(on path: TimelinePath, upTo segno: XLogSegNo) throws -> PGTimestamp?
    /// Every restore point called `name`, any timeline.
    func planningRestorePoints(named name: String) throws -> [PlanningRestorePoint]
    /// The segments of `timeline` numbered `from...to` that the safety valve reported archived
    /// WITHOUT storing them (docs/async.md), ascending. They are never archived (a segment archived
    /// after all is no longer skipped), so each one is also inside a gap of the archived runs.
    func planningSkippedSegments(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> [SkippedSegment]
}

extension Catalog: PlanningCatalog {
    public var planningSegmentSize: WALSegmentSize { segmentSize }
    public func planningTimelines() throws -> [TimeLineID] { try timelines() }
    public func planningHistory(of timeline: TimeLineID) throws -> TimelineHistory? { try history(of: timeline) }
    public func planningBackups() throws -> [BackupRecord] { try backups() }

    public func planningFirstSegment(reaching target: PGTimestamp, on path: TimelinePath, inclusive: Bool) throws -> PlanningSegment? {
        try firstSegment(reaching: target, on: path, inclusive: inclusive).map(PlanningSegment.init)
    }

    public func planningSegment(timeline: TimeLineID, segno: XLogSegNo) throws -> PlanningSegment? {
        try segment(timeline: timeline, segno: segno).map(PlanningSegment.init)
    }

    public func planningArchivedRuns(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> [ClosedRange<XLogSegNo>] {
        try archivedRanges(timeline: timeline, from: from, to: to).map { $0.firstSegno...$0.lastSegno }
    }

    public func planningSizes(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> PlanningSizes {
        let s = try segmentSizes(timeline: timeline, from: from, to: to)
        return PlanningSizes(segments: s.segments, bytes: s.bytes, storedBytes: s.storedBytes)
    }

    public func planningLatestXactTime(on path: TimelinePath, upTo segno: XLogSegNo) throws -> PGTimestamp? {
        try latestXactTime(on: path, upTo: segno)
    }

    public func planningRestorePoints(named name: String) throws -> [PlanningRestorePoint] {
        try restorePoints(named: name).map { PlanningRestorePoint(name: $0.name, time: $0.time, lsn: $0.lsn, timeline: $0.timeline) }
    }

    public func planningSkippedSegments(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> [SkippedSegment] {
        try skippedSegments(timeline: timeline, from: from, to: to)
    }
}

extension PlanningSegment {
    init(_ r: SegmentRecord) {
        self.init(timeline: r.timeline, segno: r.segno, size: r.size, storedSize: r.storedSize,
                  firstXactTime: r.firstXactTime, lastXactTime: r.lastXactTime, firstLSN: r.firstLSN, lastLSN: r.lastLSN)
    }
}
