import Catalog
import Planner
import WALFormat

/// An in-memory `PlanningCatalog`: the planner's tests need no disk.
final class FakeCatalog: PlanningCatalog {
    var planningSegmentSize = WALSegmentSize.default
    var segments: [TimeLineID: [XLogSegNo: PlanningSegment]] = [:]
    var histories: [TimeLineID: TimelineHistory] = [:]
    var backups: [BackupRecord] = []
    var restorePoints: [PlanningRestorePoint] = []
    /// Segments the safety valve let go (they must not be in `segments`, as in the real catalog).
    var skipped: [SkippedSegment] = []
    /// `.partial`, `.history` and `.backup` files (RetentionCatalog).
    var files: [RetentionFile] = []

    func planningTimelines() throws -> [TimeLineID] { Array(Set(segments.keys).union(histories.keys)).sorted() }
    func planningHistory(of timeline: TimeLineID) throws -> TimelineHistory? { histories[timeline] }
    func planningBackups() throws -> [BackupRecord] { backups }

    func owned(_ e: (timeline: TimeLineID, begin: LSN, end: LSN?)) -> ClosedRange<XLogSegNo>? {
        let first = e.begin.segment(size: planningSegmentSize)
        guard let end = e.end else { return first...XLogSegNo(Int64.max) }
        let endSeg = end.segment(size: planningSegmentSize)
        return endSeg > first ? first...(endSeg - 1) : nil
    }

    func planningFirstSegment(reaching target: PGTimestamp, on path: TimelinePath, inclusive: Bool) throws -> PlanningSegment? {
        for e in path {
            guard let r = owned(e) else { continue }
            for s in (segments[e.timeline] ?? [:]).values.sorted(by: { $0.segno < $1.segno }) where r.contains(s.segno) {
                if let l = s.lastXactTime, inclusive ? l > target : l >= target { return s }
            }
        }
        return nil
    }

    func planningSegment(timeline: TimeLineID, segno: XLogSegNo) throws -> PlanningSegment? { segments[timeline]?[segno] }

    func planningArchivedRuns(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> [ClosedRange<XLogSegNo>] {
        let nos = (segments[timeline] ?? [:]).keys.sorted()
        var runs: [ClosedRange<XLogSegNo>] = []
        for n in nos {
            if let l = runs.last, l.upperBound + 1 == n { runs[runs.count - 1] = l.lowerBound...n } else { runs.append(n...n) }
        }
        return runs.filter { $0.upperBound >= from && $0.lowerBound <= to }
    }

    func planningSizes(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> PlanningSizes {
        var s = PlanningSizes()
        for seg in (segments[timeline] ?? [:]).values where seg.segno >= from && seg.segno <= to {
            s.segments += 1; s.bytes += seg.size; s.storedBytes += seg.storedSize
        }
        return s
    }

    func planningLatestXactTime(on path: TimelinePath, upTo segno: XLogSegNo) throws -> PGTimestamp? {
        var best: PGTimestamp?
        for e in path {
            guard let r = owned(e) else { continue }
            for s in (segments[e.timeline] ?? [:]).values where r.contains(s.segno) && s.segno <= segno {
                if let l = s.lastXactTime, best.map({ $0 < l }) ?? true { best = l }
            }
        }
        return best
    }

    func planningRestorePoints(named name: String) throws -> [PlanningRestorePoint] { restorePoints.filter { $0.name == name } }

    func planningSkippedSegments(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> [SkippedSegment] {
        skipped.filter { $0.timeline == timeline && $0.segno >= from && $0.segno <= to }.sorted { $0.segno < $1.segno }
    }
}
