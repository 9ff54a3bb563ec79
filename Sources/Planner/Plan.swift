import Catalog
import WALFormat

/// Where recovery should stop. Maps one to one onto PostgreSQL's `recovery_target*` settings.
public enum RecoveryTarget: Equatable, Sendable {
    /// `recovery_target_time`: stop before the first commit or abort after the instant (pg-facts §5).
    case time(PGTimestamp)
    /// `recovery_target_lsn`.
    case lsn(LSN)
    /// `recovery_target_name`: stop after the first restore point of that name.
    case name(String)
    /// `recovery_target_xid`: stop at the commit or abort of the transaction.
    case xid(UInt64)
    /// `recovery_target = 'immediate'`: stop as soon as the backup is consistent (its end).
    case immediate
    /// No target: replay everything archived on the timeline.
    case latest

    /// `time`, `lsn`, `name`, `xid`, `immediate` or `latest` (the `target.type` JSON value).
    public var kind: String {
        switch self {
        case .time: return "time"
        case .lsn: return "lsn"
        case .name: return "name"
        case .xid: return "xid"
        case .immediate: return "immediate"
        case .latest: return "latest"
        }
    }

    /// True for the targets `recovery_target_inclusive` applies to.
    public var takesInclusive: Bool {
        switch self { case .time, .lsn, .xid: return true; default: return false }
    }
}

/// Which timeline to recover along.
public enum TimelineChoice: Equatable, Sendable {
    /// The highest timeline in the archive (resolved at plan time and written as a number, so the
    /// server follows exactly the planned path).
    case latest
    case number(TimeLineID)
}

/// `recovery_target_action`.
public enum RecoveryAction: String, Codable, Sendable, CaseIterable {
    /// Stay read-only at the target (PostgreSQL's default): check, then `pg_wal_replay_resume()`.
    case pause
    /// End recovery at the target and open a new timeline.
    case promote
    /// Shut down at the target; `recovery.signal` stays, so the next start replays again.
    case shutdown
}

/// The recovery to plan.
public struct RecoveryRequest: Equatable, Sendable {
    public var target: RecoveryTarget
    /// `recovery_target_inclusive` (time, LSN, xid targets): true is PostgreSQL's default.
    public var inclusive: Bool
    public var timeline: TimelineChoice
    public var action: RecoveryAction
    public var costModel: RecoveryCostModel
    /// For xid targets: what each backup's starting checkpoint says about transaction ids, by backup
    /// label (read from the archived WAL by the caller; a backup without one is not judged).
    public var xidHorizons: [String: XidHorizon]

    public init(target: RecoveryTarget, inclusive: Bool = true, timeline: TimelineChoice = .latest,
                action: RecoveryAction = .pause, costModel: RecoveryCostModel = .init(),
                xidHorizons: [String: XidHorizon] = [:]) {
        self.target = target; self.inclusive = inclusive; self.timeline = timeline
        self.action = action; self.costModel = costModel; self.xidHorizons = xidHorizons
    }
}

/// A checkpoint's view of transaction ids: `nextXid` (with its epoch) and `oldestActiveXid`. Every
/// transaction before `oldestActiveXid` had ended (its commit or abort record written) before the
/// checkpoint record, so before any backup that started at that checkpoint is consistent: recovery
/// from that backup cannot stop at it (PostgreSQL: "requested recovery stop point is before
/// consistent recovery point").
public struct XidHorizon: Equatable, Sendable {
    /// The checkpoint record's LSN.
    public var checkpoint: LSN
    public var nextXid: UInt64
    public var oldestActiveXid: UInt32
    public init(checkpoint: LSN, nextXid: UInt64, oldestActiveXid: UInt32) {
        self.checkpoint = checkpoint; self.nextXid = nextXid; self.oldestActiveXid = oldestActiveXid
    }

    /// `oldestActiveXid` with its epoch (the epoch of `nextXid`, one less when it wrapped since).
    public var oldestActiveFull: UInt64 {
        let epoch = nextXid >> 32
        let wrapped = oldestActiveXid > UInt32(truncatingIfNeeded: nextXid) && epoch > 0
        return (wrapped ? epoch - 1 : epoch) << 32 | UInt64(oldestActiveXid)
    }

    /// True when transaction `xid` certainly ended before this checkpoint. `xid` may carry its epoch
    /// (`pg_current_xact_id()`, 64 bits) or not (`txid`/`xid` columns, 32 bits): a 32-bit id in a
    /// cluster past its first epoch is compared as PostgreSQL does, modulo 2^32.
    public func ended(_ xid: UInt64) -> Bool {
        if xid >> 32 != 0 || nextXid >> 32 == 0 { return xid < oldestActiveFull }
        return Int32(bitPattern: UInt32(truncatingIfNeeded: xid) &- oldestActiveXid) < 0
    }
}

/// The model behind `estimatedRecoverySeconds` (docs/recovery.md):
///
///     restore  = backup stored bytes / downloadBytesPerSecond + backup bytes / restoreWriteBytesPerSecond
///     replay   = segments * perSegmentSeconds + WAL stored bytes / downloadBytesPerSecond
///              + WAL bytes / replayBytesPerSecond
///
/// `perSegmentSeconds` is one synchronous `walctl archive-get` (process start, catalog-free fetch,
/// decompress, verify, fsync, rename); the rates default to what was measured on the development
/// machine with a local repository (docs/benchmarks.md) and are deliberately round.
public struct RecoveryCostModel: Equatable, Sendable, Codable {
    public var perSegmentSeconds: Double
    public var downloadBytesPerSecond: Double
    public var replayBytesPerSecond: Double
    public var restoreWriteBytesPerSecond: Double

    public init(perSegmentSeconds: Double = 0.05, downloadBytesPerSecond: Double = 400e6,
                replayBytesPerSecond: Double = 200e6, restoreWriteBytesPerSecond: Double = 300e6) {
        self.perSegmentSeconds = perSegmentSeconds; self.downloadBytesPerSecond = downloadBytesPerSecond
        self.replayBytesPerSecond = replayBytesPerSecond; self.restoreWriteBytesPerSecond = restoreWriteBytesPerSecond
    }
}

/// One element of the timeline path, as printed: `begin` / `end` are LSNs (`X/Y`), `end` absent
/// for the target timeline.
public struct PlanPathElement: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    public var begin: String
    public var end: String?
}

/// A run of segments `first...last` (inclusive) read from one timeline.
public struct PlanSegmentRange: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    public var firstSegno: XLogSegNo
    public var lastSegno: XLogSegNo
    public var firstName: String
    public var lastName: String
    public var count: UInt64

    init(timeline: TimeLineID, first: XLogSegNo, last: XLogSegNo, size: WALSegmentSize) {
        self.timeline = timeline; firstSegno = first; lastSegno = last
        firstName = SegmentID(timeline: timeline, segno: first).fileName(size: size)
        lastName = SegmentID(timeline: timeline, segno: last).fileName(size: size)
        count = last - first + 1
    }

    // JSON: the keys of every segment run (docs/json.md). Plans saved before `segmentCount` (with
    // `count`) still decode: the count follows from the segment numbers.
    enum CodingKeys: String, CodingKey { case timeline, firstSegno, lastSegno, firstName, lastName, segmentCount }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(timeline, forKey: .timeline); try c.encode(firstSegno, forKey: .firstSegno); try c.encode(lastSegno, forKey: .lastSegno)
        try c.encode(firstName, forKey: .firstName); try c.encode(lastName, forKey: .lastName); try c.encode(count, forKey: .segmentCount)
    }
}

/// The target as printed in the plan: `type`, its `value` (time as ISO 8601, LSN `X/Y`, name, xid),
/// and `inclusive` when it applies.
public struct PlanTarget: Codable, Equatable, Sendable {
    public var type: String
    public var value: String?
    public var inclusive: Bool?
    public init(type: String, value: String?, inclusive: Bool?) { self.type = type; self.value = value; self.inclusive = inclusive }
}

extension PlanSegmentRange {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        timeline = try c.decode(TimeLineID.self, forKey: .timeline)
        firstSegno = try c.decode(XLogSegNo.self, forKey: .firstSegno); lastSegno = try c.decode(XLogSegNo.self, forKey: .lastSegno)
        firstName = try c.decode(String.self, forKey: .firstName); lastName = try c.decode(String.self, forKey: .lastName)
        guard lastSegno >= firstSegno else {
            throw DecodingError.dataCorruptedError(forKey: .lastSegno, in: c, debugDescription: "lastSegno before firstSegno")
        }
        count = lastSegno - firstSegno + 1
    }
}

/// One PostgreSQL setting to write, unquoted (the writer quotes it).
public struct RecoverySetting: Codable, Equatable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) { self.name = name; self.value = value }
}

/// A recovery that will work with what is archived, proven from the catalog before anything is
/// touched. Encoded as the `--dry-run --json` output and saved in PGDATA as
/// `walctl_recovery_plan.json`; key names are a contract (docs/json.md; 2: `segmentRanges[]` carry
/// `segmentCount`, no longer `count`).
public struct RecoveryPlan: Codable, Equatable, Sendable {
    public var formatVersion = 2
    public var target: PlanTarget
    /// The resolved target timeline.
    public var timeline: TimeLineID
    public var timelinePath: [PlanPathElement]
    public var backupLabel: String
    public var backup: BackupRecord
    /// First and last WAL segment recovery reads (file names), and how many segments in all.
    public var firstSegment: String
    public var lastSegment: String
    public var segmentCount: Int64
    /// The segments per timeline, in WAL order.
    public var segmentRanges: [PlanSegmentRange]
    /// History files recovery needs (all archived).
    public var historyFiles: [String]
    public var walBytes: Int64
    public var walStoredBytes: Int64
    public var backupStoredBytes: Int64
    /// Stored bytes to read from the repository: the backup plus the WAL.
    public var bytesToDownload: Int64
    public var estimatedRestoreSeconds: Double
    public var estimatedReplaySeconds: Double
    /// Restore plus replay, from `RecoveryCostModel`.
    public var estimatedRecoverySeconds: Double
    /// Where and why replay will stop, in words.
    public var expectedStop: String
    public var action: RecoveryAction
    /// The recovery settings, without `restore_command` (the command layer adds it first).
    public var settings: [RecoverySetting]
    public var warnings: [String]
    /// An incremental backup's chain, its full backup first and `backupLabel` last (restore reads
    /// each; `backupStoredBytes` counts them all); nil for a full backup.
    public var backupChain: [String]? = nil
}

/// Why a recovery cannot be planned; stable codes (docs/recovery.md).
public enum RefusalReason: String, Codable, Sendable, CaseIterable {
    /// No usable base backup ends before the target.
    case beforeFirstBackup = "before-first-backup"
    /// No complete base backup at all on the path to the timeline.
    case noBackup = "no-backup"
    /// Nothing archived beyond the target: recovery could not see a record that ends it.
    case afterLastCommit = "after-last-commit"
    /// A segment between the backup and the target is not archived.
    case gap = "gap"
    /// A segment between the backup and the target was let go by the safety valve: reported
    /// archived WITHOUT being stored (docs/async.md). Only a backup taken after it helps.
    case skipped = "skipped"
    /// The target timeline's history file is not archived.
    case missingHistory = "missing-history"
    /// The requested timeline is not in the archive.
    case unknownTimeline = "unknown-timeline"
    /// No restore point with that name on the timeline path.
    case restorePointNotFound = "restore-point-not-found"
    /// The target LSN is beyond the archived WAL.
    case targetNotArchived = "target-not-archived"
    /// The archive holds no WAL at all.
    case emptyArchive = "empty-archive"
    /// The catalog lists a file the plan needs, but its object (meta, data object, or a backup's
    /// object) is not in the repository. Never decided by the planner (it reads only the catalog):
    /// `walctl recover` proves the plan against the repository's listings before it touches anything.
    case missingObject = "missing-object"
}

/// A refusal: what is wrong, what is missing, and the nearest times that could be recovered.
public struct PlanRefusal: Error, Codable, Equatable, Sendable, CustomStringConvertible {
    /// `recover --dry-run --json`'s refusal document (docs/json.md).
    public var formatVersion = 1
    public var reason: RefusalReason
    public var message: String
    public var timeline: TimeLineID?
    /// Missing segment file names (at most `missingSegmentsListed`), and how many are missing.
    public var missingSegments: [String] = []
    public var missingSegmentCount: UInt64 = 0
    public var gaps: [PlanSegmentRange] = []
    public var missingHistoryFiles: [String] = []
    /// `skipped`: the segments the safety valve let go inside the gaps (at most
    /// `missingSegmentsListed`), with its reasons.
    public var skippedSegments: [SkippedSegment] = []
    /// `missing-object`: the repository keys the plan needs that are not in the repository (at
    /// most `missingSegmentsListed`).
    public var missingObjects: [String] = []
    /// The latest target time before the requested one that can be recovered, and the earliest after it.
    public var nearestRecoverableBefore: PGTimestamp?
    public var nearestRecoverableAfter: PGTimestamp?

    public static let missingSegmentsListed = 1000
    public var description: String { message }

    public init(reason: RefusalReason, message: String, timeline: TimeLineID? = nil) {
        self.reason = reason; self.message = message; self.timeline = timeline
    }
}

/// The planner's answer.
public enum PlanResult: Equatable, Sendable {
    case ready(RecoveryPlan)
    case refused(PlanRefusal)

    public var plan: RecoveryPlan? { if case .ready(let p) = self { return p }; return nil }
    public var refusal: PlanRefusal? { if case .refused(let r) = self { return r }; return nil }
}
