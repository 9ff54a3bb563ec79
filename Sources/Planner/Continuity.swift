import Catalog
import WALFormat

/// `walctl verify`: is the archive continuous? From the catalog alone, along the path of the newest
/// timeline (its history), from the oldest complete backup's start segment (the first archived
/// segment when there is no backup) to the last archived segment: the missing segments, those the
/// safety valve let go, the backups whose own WAL (start to stop) is incomplete, and a missing
/// timeline history file.
///
/// Encoded as `walctl verify --json`; key names are a contract (docs/json.md): keys may be added,
/// none renamed or removed without bumping `formatVersion` (2: `gaps[]` as every segment run,
/// `...Count` for counts).
public struct ContinuityReport: Codable, Equatable, Sendable {
    public var formatVersion = 2
    /// True when nothing below is a problem.
    public var ok: Bool
    /// The newest timeline (nil: nothing is archived).
    public var timeline: TimeLineID?
    /// The range checked, split by the timeline recovery reads each segment from, oldest first.
    public var timelines: [PlanSegmentRange]
    /// Missing segments in that range (skipped ones included), by owning timeline.
    public var gaps: [ContinuityGap]
    /// Gaps the retention settings explain (`walctl expire` removed that WAL on purpose: it lies
    /// between a backup kept for consistency only and the next one); reported, not a failure.
    public var expiredGaps: [ContinuityGap] = []
    /// The segments of `gaps` the safety valve reported archived WITHOUT storing them.
    public var skipped: [SkippedSegment]
    /// Every complete backup on the path, oldest stop first.
    public var backups: [BackupContinuity]
    /// History files the path needs that are not archived.
    public var missingHistoryFiles: [String]
    /// Segments whose stored object failed to read back (`--deep` only; `walctl verify` fills it).
    public var corrupt: [CorruptObject] = []
    /// True when every object in the range was read back and its CRC-32C checked.
    public var deep = false
    /// Objects read back by `--deep`.
    public var objectsRead = 0
    /// Files archived in the repository (their meta, or a backup's `backup.json`) that the catalog
    /// lacks: the catalog is stale (`walctl verify` fills it from the repository's listing).
    public var staleCatalog: [RepositoryFinding] = []
    /// Files the catalog lists whose objects are not in the repository.
    public var missingObjects: [RepositoryFinding] = []
    /// Temporary objects and data objects no meta references, older than an hour (not a problem by
    /// themselves: `ok` ignores them).
    public var leftovers: [LeftoverObject] = []
    /// Segments whose WAL is damaged, after the start of the newest complete backup on the path.
    public var damaged: [DamagedSegment] = []
    /// What `--repair` changed in the catalog.
    public var repaired: [RepositoryFinding] = []

    enum CodingKeys: String, CodingKey {
        case formatVersion, ok, timeline, timelines, gaps, skipped, backups, missingHistoryFiles, corrupt, deep
        case objectsRead = "readObjectCount", staleCatalog, missingObjects, leftovers, damaged, repaired
    }

    /// Recomputes `ok` from the findings.
    public mutating func settle() {
        ok = gaps.isEmpty && skipped.isEmpty && backups.allSatisfy(\.walComplete) && missingHistoryFiles.isEmpty && corrupt.isEmpty
            && staleCatalog.isEmpty && missingObjects.isEmpty && damaged.isEmpty
    }
}

/// A file on one side only: `name` (a WAL file name, or `backup LABEL`), `key` the repository key
/// concerned (the meta, the data object, the backup object), `detail` in words.
public struct RepositoryFinding: Codable, Equatable, Sendable {
    public var name: String
    public var key: String
    public var detail: String
    public init(name: String, key: String, detail: String) { self.name = name; self.key = key; self.detail = detail }
}

/// An object nothing refers to: an interrupted write's temporary object, or a data object whose
/// file has no meta (a push killed before its commit marker).
public struct LeftoverObject: Codable, Equatable, Sendable {
    public var key: String
    public var size: Int64
    /// Its modification time, when the store tells.
    public var modifiedAt: PGTimestamp?
    public init(key: String, size: Int64, modifiedAt: PGTimestamp?) { self.key = key; self.size = size; self.modifiedAt = modifiedAt }
}

/// A run of missing segments, `from` ... `to` (file names, inclusive), on one timeline. Its JSON has
/// the keys of every segment run (`SegmentGap`): `firstName`, `lastName`, `segmentCount`.
public struct ContinuityGap: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    public var firstSegno: XLogSegNo
    public var lastSegno: XLogSegNo
    public var from: String
    public var to: String
    public var count: UInt64
    public init(timeline: TimeLineID, firstSegno: XLogSegNo, lastSegno: XLogSegNo, from: String, to: String, count: UInt64) {
        self.timeline = timeline; self.firstSegno = firstSegno; self.lastSegno = lastSegno
        self.from = from; self.to = to; self.count = count
    }
    enum CodingKeys: String, CodingKey {
        case timeline, firstSegno, lastSegno, from = "firstName", to = "lastName", count = "segmentCount"
    }
}

/// Whether a backup's own WAL, from the segment holding its start LSN to the one holding its end,
/// is archived: a backup without it can never be restored to a consistent state.
public struct BackupContinuity: Codable, Equatable, Sendable {
    public var label: String
    public var timeline: TimeLineID
    public var firstSegment: String
    public var lastSegment: String
    public var walComplete: Bool
    /// Segments of that range not archived.
    public var missingSegments: UInt64

    enum CodingKeys: String, CodingKey {
        case label, timeline, firstSegment, lastSegment, walComplete, missingSegments = "missingSegmentCount"
    }
}

/// An archived object that did not read back intact.
public struct CorruptObject: Codable, Equatable, Sendable {
    public var name: String
    public var error: String
    public init(name: String, error: String) { self.name = name; self.error = error }
}

public enum ContinuityChecker {
    /// Checks the archive's continuity along the newest timeline's path (see `ContinuityReport`).
    /// - Throws: only what the catalog throws.
    public static func check(catalog: some PlanningCatalog) throws -> ContinuityReport {
        var p = Planning(catalog: catalog, request: RecoveryRequest(target: .latest))
        var missingHistory: [String] = []
        do {
            try p.resolvePath()
        } catch let r as PlanRefusal where r.reason == .missingHistory {
            // Check what can be checked: the newest timeline on its own.
            missingHistory = r.missingHistoryFiles
            p.path = [(timeline: p.timeline, begin: LSN(0), end: nil)]
        } catch let r as PlanRefusal where r.reason == .emptyArchive {
            return ContinuityReport(ok: true, timeline: nil, timelines: [], gaps: [], skipped: [], backups: [], missingHistoryFiles: [])
        }
        let backups = try p.completeBackupsOnPath()
        var checks: [BackupContinuity] = []
        for b in backups {
            let first = p.startSegment(b), last = p.stopSegment(b)
            let missing = try p.gaps(first, last).reduce(UInt64(0)) { $0 + $1.count }
            checks.append(BackupContinuity(label: b.label, timeline: b.timeline, firstSegment: p.name(first), lastSegment: p.name(last),
                                           walComplete: missing == 0, missingSegments: missing))
        }
        var report = ContinuityReport(ok: false, timeline: p.timeline, timelines: [], gaps: [], skipped: [], backups: checks,
                                      missingHistoryFiles: missingHistory)
        if let from = try backups.map(p.startSegment).min() ?? p.firstArchived(), let to = try p.lastArchived(), from <= to {
            report.timelines = p.ranges(from, to)
            for g in try p.gaps(from, to) {
                report.gaps.append(ContinuityGap(timeline: g.timeline, firstSegno: g.firstSegno, lastSegno: g.lastSegno, from: g.firstName, to: g.lastName, count: g.count))
                report.skipped += try catalog.planningSkippedSegments(timeline: g.timeline, from: g.firstSegno, to: g.lastSegno)
            }
        }
        report.settle()
        return report
    }
}
