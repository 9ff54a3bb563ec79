import Foundation
import Storage
import WALFormat

/// Everything `walctl info` prints, and exactly what `walctl info --json` emits.
/// The JSON keys are a stable interface documented in docs/json.md: keys may be added, never
/// renamed or removed without bumping `formatVersion`.
public struct CatalogInfo: Codable, Equatable, Sendable {
    /// Bumped only on an incompatible change of this JSON. 2: counts are `...Count`, runs carry
    /// `segmentCount` (docs/json.md).
    public var formatVersion: Int = 2
    public var repository: String
    public var systemIdentifier: String?
    public var walSegmentSize: UInt64
    public var catalogPath: String
    /// False while the catalog may miss files (never rebuilt, or a rebuild did not finish).
    public var catalogComplete: Bool
    public var generatedAt: PGTimestamp
    public var counts: CatalogCounts
    public var backups: [BackupRecord]
    public var timelines: [TimelineInfo]
    public var recoverableWindows: [RecoverableWindow]
    public var lastArchived: LastArchived?
    /// Segments the safety valve reported archived WITHOUT storing them (docs/async.md), by timeline
    /// and segment number: PITR from a backup taken before one of them cannot cross it.
    public var skippedSegments: [SkippedSegment]
    /// When the catalog was last reconciled with the repository (`walctl verify`, `catalog check`,
    /// a complete rebuild); nil when never.
    public var catalogCheckedAt: PGTimestamp? = nil
    /// `ok`, or the worst problem in one line (`STALE CATALOG: ...`); filled by `walctl info`
    /// (Commands), which compares the catalog with the newest part of the repository.
    public var status: String? = nil
    /// The problem `status` names as a stable code: `ok`, `missing-objects`, `stale-catalog`,
    /// `damaged-wal`, `skipped`, `gap`, `incomplete-catalog`.
    public var statusCode: String? = nil
    /// The newest `walctl drill` (docs/drills.md), and the newest one that passed; nil when none.
    public var lastDrill: DrillSummary? = nil
    public var lastPassedDrill: DrillSummary? = nil
    /// Set by `walctl info` (Commands) when the last successful drill is older than `drill-max-age`
    /// (or there is none): one line for the operator.
    public var drillWarning: String? = nil
    /// The retention settings and windows (docs/retention.md); filled by `walctl info`.
    public var retention: RetentionStatus? = nil

    /// One timeline's archived WAL.
    public struct TimelineInfo: Codable, Equatable, Sendable {
        public var timeline: TimeLineID
        /// The parent timeline and the switch point, from the recorded history (nil for a root).
        public var parent: TimeLineID?
        public var switchPoint: LSN?
        public var segments: Int64
        public var bytes: Int64
        public var storedBytes: Int64
        /// Archived runs, ascending, and the gaps between them.
        public var ranges: [SegmentRange]
        public var gaps: [SegmentGap]

        enum CodingKeys: String, CodingKey {
            case timeline, parent, switchPoint, segments = "segmentCount", bytes, storedBytes, ranges, gaps
        }
    }

    /// The most recently archived segment.
    public struct LastArchived: Codable, Equatable, Sendable {
        public var name: String
        public var archivedAt: PGTimestamp
        /// Seconds between `archivedAt` and `generatedAt`.
        public var ageSeconds: Double
        public var lastXactTime: PGTimestamp?
    }
}

extension Catalog {
    /// Gathers `CatalogInfo` in one read snapshot. Cost: a few index seeks per timeline plus one row
    /// per archived run and per backup; no scan of the segment table.
    public func info(now: PGTimestamp = PGTimestamp(date: Date())) throws(CatalogError) -> CatalogInfo {
        try read { () throws(CatalogError) -> CatalogInfo in
            let sys = try systemIdentifierRecorded()
            var tlInfo: [CatalogInfo.TimelineInfo] = []
            for tl in try timelines() {
                let h = try history(of: tl)
                let s = try conn.prepare("SELECT segments, bytes, stored_bytes FROM timeline_stats WHERE repo=? AND timeline=?")
                try s.bind([.int(repo), .int(Int64(tl))])
                var segs: Int64 = 0, bytes: Int64 = 0, stored: Int64 = 0
                if try s.step() { segs = s.int64(0); bytes = s.int64(1); stored = s.int64(2) }
                s.reset()
                let ranges = try archivedRanges(timeline: tl)
                var gaps: [SegmentGap] = []
                for (a, b) in zip(ranges, ranges.dropFirst()) { gaps.append(gap(tl, a.lastSegno + 1, b.firstSegno - 1)) }
                tlInfo.append(.init(timeline: tl, parent: h?.entries.last?.timeline, switchPoint: h?.entries.last?.switchPoint,
                                       segments: segs, bytes: bytes, storedBytes: stored, ranges: ranges, gaps: gaps))
            }
            let last = try lastArchivedSegment().map {
                CatalogInfo.LastArchived(name: $0.name, archivedAt: $0.archivedAt,
                                         ageSeconds: Double(now.microseconds - $0.archivedAt.microseconds) / 1_000_000,
                                         lastXactTime: $0.lastXactTime)
            }
            let drills = try lastDrills()
            var info = CatalogInfo(repository: repositoryURL, systemIdentifier: sys, walSegmentSize: segmentSize.bytes,
                               catalogPath: path, catalogComplete: try isComplete(), generatedAt: now,
                               counts: try counts(), backups: try backups(), timelines: tlInfo,
                               recoverableWindows: try recoverableWindows(), lastArchived: last,
                               skippedSegments: try skippedSegments(), catalogCheckedAt: try checkedAt())
            info.lastDrill = drills.last
            info.lastPassedDrill = drills.lastPassed
            return info
        }
    }

    func systemIdentifierRecorded() throws(CatalogError) -> String? {
        let s = try conn.prepare("SELECT system_identifier FROM repository WHERE id=?")
        try s.bind([.int(repo)])
        defer { s.reset() }
        return try s.step() ? s.textOrNil(0) : nil
    }
}
