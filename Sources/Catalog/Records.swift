import Foundation
import Storage
import WALFormat

/// A timeline path as `TimelineHistory.path` returns it: the timelines to follow, oldest first, each
/// with the LSN range of the path it covers (`end` nil for the target timeline).
public typealias TimelinePath = [(timeline: TimeLineID, begin: LSN, end: LSN?)]

/// One archived WAL segment (or `.partial` segment) as the catalog knows it.
public struct SegmentRecord: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    public var segno: XLogSegNo
    /// True for a `.partial` segment.
    public var partial: Bool
    /// The PostgreSQL file name (`000000010000000000000003`, or `...partial`).
    public var name: String
    public var size: Int64
    public var storedSize: Int64
    public var codec: String
    public var crc32c: UInt32
    public var archivedAt: PGTimestamp
    public var firstCommitTime: PGTimestamp?
    public var lastCommitTime: PGTimestamp?
    /// First / last commit-or-abort time: what `recovery_target_time` is tested against.
    public var firstXactTime: PGTimestamp?
    public var lastXactTime: PGTimestamp?
    public var commits: Int
    public var aborts: Int
    /// Number of restore points that start in this segment.
    public var restorePoints: Int
    public var endsWithSwitch: Bool
    public var firstLSN: LSN?
    public var lastLSN: LSN?
    /// Where the segment's WAL is damaged (the first record failing its CRC, or where valid WAL ends
    /// early inside a complete segment), nil when it is intact. See `SegmentDamage`.
    public var damagedLSN: LSN? = nil
    /// What is damaged, in words.
    public var damage: String? = nil

    public var hasRestorePoints: Bool { restorePoints > 0 }

    // JSON (`walctl catalog find --json`, docs/json.md): counts are `...Count`, the CRC is 8 hex digits.
    enum CodingKeys: String, CodingKey {
        case timeline, segno, partial, name, size, storedSize, codec, crc32c, archivedAt
        case firstCommitTime, lastCommitTime, firstXactTime, lastXactTime
        case commits = "commitCount", aborts = "abortCount", restorePoints = "restorePointCount"
        case endsWithSwitch, firstLSN, lastLSN, damagedLSN, damage
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(timeline, forKey: .timeline); try c.encode(segno, forKey: .segno)
        try c.encode(partial, forKey: .partial); try c.encode(name, forKey: .name)
        try c.encode(size, forKey: .size); try c.encode(storedSize, forKey: .storedSize)
        try c.encode(codec, forKey: .codec); try c.encode(ArchivedFileMeta.hex(crc32c), forKey: .crc32c)
        try c.encode(archivedAt, forKey: .archivedAt)
        try c.encodeIfPresent(firstCommitTime, forKey: .firstCommitTime); try c.encodeIfPresent(lastCommitTime, forKey: .lastCommitTime)
        try c.encodeIfPresent(firstXactTime, forKey: .firstXactTime); try c.encodeIfPresent(lastXactTime, forKey: .lastXactTime)
        try c.encode(commits, forKey: .commits); try c.encode(aborts, forKey: .aborts)
        try c.encode(restorePoints, forKey: .restorePoints); try c.encode(endsWithSwitch, forKey: .endsWithSwitch)
        try c.encodeIfPresent(firstLSN, forKey: .firstLSN); try c.encodeIfPresent(lastLSN, forKey: .lastLSN)
        try c.encodeIfPresent(damagedLSN, forKey: .damagedLSN); try c.encodeIfPresent(damage, forKey: .damage)
    }

}

/// A named restore point, located.
public struct RestorePointRecord: Codable, Equatable, Sendable {
    public var name: String
    public var time: PGTimestamp
    public var lsn: LSN
    public var timeline: TimeLineID
    /// The segment file that holds the restore point record.
    public var segmentName: String
}

extension SegmentRecord {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        timeline = try c.decode(TimeLineID.self, forKey: .timeline); segno = try c.decode(XLogSegNo.self, forKey: .segno)
        partial = try c.decode(Bool.self, forKey: .partial); name = try c.decode(String.self, forKey: .name)
        size = try c.decode(Int64.self, forKey: .size); storedSize = try c.decode(Int64.self, forKey: .storedSize)
        codec = try c.decode(String.self, forKey: .codec)
        let hex = try c.decode(String.self, forKey: .crc32c)
        guard hex.count == 8, let crc = UInt32(hex, radix: 16) else {
            throw DecodingError.dataCorruptedError(forKey: .crc32c, in: c, debugDescription: "crc32c must be 8 hex digits, got \(hex)")
        }
        crc32c = crc
        archivedAt = try c.decode(PGTimestamp.self, forKey: .archivedAt)
        firstCommitTime = try c.decodeIfPresent(PGTimestamp.self, forKey: .firstCommitTime)
        lastCommitTime = try c.decodeIfPresent(PGTimestamp.self, forKey: .lastCommitTime)
        firstXactTime = try c.decodeIfPresent(PGTimestamp.self, forKey: .firstXactTime)
        lastXactTime = try c.decodeIfPresent(PGTimestamp.self, forKey: .lastXactTime)
        commits = try c.decode(Int.self, forKey: .commits); aborts = try c.decode(Int.self, forKey: .aborts)
        restorePoints = try c.decode(Int.self, forKey: .restorePoints); endsWithSwitch = try c.decode(Bool.self, forKey: .endsWithSwitch)
        firstLSN = try c.decodeIfPresent(LSN.self, forKey: .firstLSN); lastLSN = try c.decodeIfPresent(LSN.self, forKey: .lastLSN)
        damagedLSN = try c.decodeIfPresent(LSN.self, forKey: .damagedLSN); damage = try c.decodeIfPresent(String.self, forKey: .damage)
    }
}

/// A run of missing segments `first...last` (inclusive) on one timeline.
public struct SegmentGap: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    public var firstSegno: XLogSegNo
    public var lastSegno: XLogSegNo
    /// File names of the first and last missing segment.
    public var firstName: String
    public var lastName: String
    public var count: UInt64 { lastSegno - firstSegno + 1 }

    // JSON: every segment run (ranges, gaps, plan ranges) has the same keys (docs/json.md).
    enum CodingKeys: String, CodingKey { case timeline, firstSegno, lastSegno, firstName, lastName, segmentCount }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(timeline, forKey: .timeline); try c.encode(firstSegno, forKey: .firstSegno); try c.encode(lastSegno, forKey: .lastSegno)
        try c.encode(firstName, forKey: .firstName); try c.encode(lastName, forKey: .lastName); try c.encode(count, forKey: .segmentCount)
    }
}

/// A run of archived segments `first...last` (inclusive, no gap) on one timeline.
public struct SegmentRange: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    public var firstSegno: XLogSegNo
    public var lastSegno: XLogSegNo
    public var firstName: String
    public var lastName: String
    public var count: UInt64 { lastSegno - firstSegno + 1 }

    // JSON: every segment run (ranges, gaps, plan ranges) has the same keys (docs/json.md).
    enum CodingKeys: String, CodingKey { case timeline, firstSegno, lastSegno, firstName, lastName, segmentCount }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(timeline, forKey: .timeline); try c.encode(firstSegno, forKey: .firstSegno); try c.encode(lastSegno, forKey: .lastSegno)
        try c.encode(firstName, forKey: .firstName); try c.encode(lastName, forKey: .lastName); try c.encode(count, forKey: .segmentCount)
    }
}

extension SegmentRange {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        timeline = try c.decode(TimeLineID.self, forKey: .timeline)
        firstSegno = try c.decode(XLogSegNo.self, forKey: .firstSegno); lastSegno = try c.decode(XLogSegNo.self, forKey: .lastSegno)
        firstName = try c.decode(String.self, forKey: .firstName); lastName = try c.decode(String.self, forKey: .lastName)
    }
}

extension SegmentGap {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        timeline = try c.decode(TimeLineID.self, forKey: .timeline)
        firstSegno = try c.decode(XLogSegNo.self, forKey: .firstSegno); lastSegno = try c.decode(XLogSegNo.self, forKey: .lastSegno)
        firstName = try c.decode(String.self, forKey: .firstName); lastName = try c.decode(String.self, forKey: .lastName)
    }
}

/// A segment the safety valve reported archived WITHOUT storing it (docs/async.md): recovery cannot
/// cross it, from any backup taken before it.
public struct SkippedSegment: Codable, Equatable, Sendable {
    /// The segment file name.
    public var name: String
    public var timeline: TimeLineID
    public var segno: XLogSegNo
    /// Why the valve let it go (the limit that was passed).
    public var reason: String
    public var skippedAt: PGTimestamp
    /// Bytes of the segment that was not stored.
    public var size: Int64

    public init(name: String, timeline: TimeLineID, segno: XLogSegNo, reason: String, skippedAt: PGTimestamp, size: Int64) {
        self.name = name; self.timeline = timeline; self.segno = segno
        self.reason = reason; self.skippedAt = skippedAt; self.size = size
    }
}

/// State of a base backup.
public enum BackupStatus: String, Codable, Sendable, CaseIterable {
    /// Started, not finished (or the process died): never used for recovery.
    case running
    /// Finished and verified: the only state the recovery queries consider.
    case complete
    case failed
    /// Past retention, kept for the record while its data is being deleted.
    case expired
}

/// Full or incremental (docs/backup.md): an incremental backup stores only what changed since its
/// `parent` and is restored together with its chain (the full backup it descends from and every
/// incremental between).
public enum BackupType: String, Codable, Sendable, CaseIterable {
    case full
    case incremental
}

/// A base backup as recorded by the backup command, and as stored in the repository as
/// `backup/<label>/backup.json` (this struct's JSON, see docs/catalog.md).
public struct BackupRecord: Codable, Equatable, Sendable {
    public var label: String
    /// `START WAL LOCATION`: the redo point recovery starts from.
    public var startLSN: LSN
    /// `STOP WAL LOCATION`: recovery is consistent once it has replayed up to here.
    public var stopLSN: LSN
    public var startTime: PGTimestamp
    /// When the backup ended. Backup history files print whole seconds; record the precise time
    /// when known.
    public var stopTime: PGTimestamp
    /// The timeline the backup started on (`START TIMELINE`).
    public var timeline: TimeLineID
    /// `STOP TIMELINE`, when it differs or is known.
    public var stopTimeline: TimeLineID?
    public var checkpointLSN: LSN?
    /// Bytes of the backed-up data directory, and bytes stored.
    public var size: Int64
    public var storedSize: Int64?
    public var status: BackupStatus
    public var pgVersion: Int
    /// Decimal string, as in `repository.json`.
    public var systemIdentifier: String
    /// Each database and its size (`pg_database_size`) when the backup ended, for `walctl drill`'s
    /// database check; nil in records of backups taken before walctl recorded it.
    public var databases: [DatabaseSize]? = nil
    /// `walctl backup take --annotation key=value` (nil: none). Stored in `backup.json`.
    public var annotations: [String: String]? = nil
    /// True while the backup is pinned (`walctl backup pin`): never expired. The repository's truth
    /// is the marker object `backup/<label>/pinned` (docs/retention.md); `backup.json` is written
    /// once and never carries it.
    public var pinned: Bool? = nil
    /// `full`, or `incremental` (records written before incremental backups existed decode as full).
    public var type: BackupType = .full
    /// The backup an incremental one builds on (the newest complete backup of the same system,
    /// timeline history and PostgreSQL major version when it was taken); nil for a full backup.
    /// Encoded as `null` then (docs/json.md), never absent.
    public var parent: String? = nil

    public init(label: String, startLSN: LSN, stopLSN: LSN, startTime: PGTimestamp, stopTime: PGTimestamp,
                timeline: TimeLineID, stopTimeline: TimeLineID? = nil, checkpointLSN: LSN? = nil,
                size: Int64, storedSize: Int64? = nil, status: BackupStatus, pgVersion: Int, systemIdentifier: String,
                annotations: [String: String]? = nil, type: BackupType = .full, parent: String? = nil) {
        self.label = label; self.startLSN = startLSN; self.stopLSN = stopLSN
        self.startTime = startTime; self.stopTime = stopTime; self.timeline = timeline
        self.stopTimeline = stopTimeline; self.checkpointLSN = checkpointLSN
        self.size = size; self.storedSize = storedSize; self.status = status
        self.pgVersion = pgVersion; self.systemIdentifier = systemIdentifier
        self.annotations = annotations
        self.type = type; self.parent = parent
    }

    enum CodingKeys: String, CodingKey {
        case label, startLSN, stopLSN, startTime, stopTime, timeline, stopTimeline, checkpointLSN
        case size, storedSize, status, pgVersion, systemIdentifier, databases, annotations, pinned, type, parent
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        label = try c.decode(String.self, forKey: .label)
        startLSN = try c.decode(LSN.self, forKey: .startLSN); stopLSN = try c.decode(LSN.self, forKey: .stopLSN)
        startTime = try c.decode(PGTimestamp.self, forKey: .startTime); stopTime = try c.decode(PGTimestamp.self, forKey: .stopTime)
        timeline = try c.decode(TimeLineID.self, forKey: .timeline)
        stopTimeline = try c.decodeIfPresent(TimeLineID.self, forKey: .stopTimeline)
        checkpointLSN = try c.decodeIfPresent(LSN.self, forKey: .checkpointLSN)
        size = try c.decode(Int64.self, forKey: .size); storedSize = try c.decodeIfPresent(Int64.self, forKey: .storedSize)
        status = try c.decode(BackupStatus.self, forKey: .status)
        pgVersion = try c.decode(Int.self, forKey: .pgVersion)
        systemIdentifier = try c.decode(String.self, forKey: .systemIdentifier)
        databases = try c.decodeIfPresent([DatabaseSize].self, forKey: .databases)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        pinned = try c.decodeIfPresent(Bool.self, forKey: .pinned)
        type = try c.decodeIfPresent(BackupType.self, forKey: .type) ?? .full
        parent = try c.decodeIfPresent(String.self, forKey: .parent)
        if type == .incremental && parent == nil {
            throw DecodingError.dataCorruptedError(forKey: .parent, in: c, debugDescription: "an incremental backup needs its parent")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(label, forKey: .label)
        try c.encode(startLSN, forKey: .startLSN); try c.encode(stopLSN, forKey: .stopLSN)
        try c.encode(startTime, forKey: .startTime); try c.encode(stopTime, forKey: .stopTime)
        try c.encode(timeline, forKey: .timeline)
        try c.encodeIfPresent(stopTimeline, forKey: .stopTimeline); try c.encodeIfPresent(checkpointLSN, forKey: .checkpointLSN)
        try c.encode(size, forKey: .size); try c.encodeIfPresent(storedSize, forKey: .storedSize)
        try c.encode(status, forKey: .status); try c.encode(pgVersion, forKey: .pgVersion)
        try c.encode(systemIdentifier, forKey: .systemIdentifier)
        try c.encodeIfPresent(databases, forKey: .databases); try c.encodeIfPresent(annotations, forKey: .annotations)
        try c.encodeIfPresent(pinned, forKey: .pinned)
        try c.encode(type, forKey: .type)
        // `parent` is always present: the label, or null for a full backup (docs/json.md).
        if let parent { try c.encode(parent, forKey: .parent) } else { try c.encodeNil(forKey: .parent) }
    }

    /// The key of the pin marker: `backup/<label>/pinned`.
    public static func pinKey(label: String) -> String { RepositoryLayout.backupPrefix + label + "/pinned" }

    /// The repository key of a backup's record: `backup/<label>/backup.json`.
    public static func metadataKey(label: String) -> String { RepositoryLayout.backupPrefix + label + "/backup.json" }

    /// Decodes the JSON written under `metadataKey(label:)`.
    public static func decode(_ bytes: [UInt8], key: String) throws(CatalogError) -> BackupRecord {
        do {
            return try JSONDecoder().decode(BackupRecord.self, from: Data(bytes))
        } catch {
            throw .repository("backup record \(key) is unreadable: \(error)")
        }
    }

    /// The JSON for `metadataKey(label:)`: sorted keys, so equal records are equal bytes.
    public func encoded() throws(CatalogError) -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        do { return Array(try enc.encode(self)) } catch { throw .invalidInput("cannot encode backup \(label): \(error)") }
    }
}

/// One database of a backed-up cluster and its size in bytes.
public struct DatabaseSize: Codable, Equatable, Sendable {
    public var name: String
    public var bytes: Int64
    public init(name: String, bytes: Int64) { self.name = name; self.bytes = bytes }
}

/// From when to when one timeline can be recovered with what is archived.
public struct RecoverableWindow: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    /// The earliest complete backup on the path to the timeline, nil when there is none.
    public var backupLabel: String?
    /// The earliest time a recovery can target: that backup's stop time (nil: no backup).
    public var from: PGTimestamp?
    /// The latest commit-or-abort time reachable from that backup without crossing a gap (nil: none).
    /// A recovery target must be before this time (recovery stops before the first later record).
    public var to: PGTimestamp?
    /// The latest commit-or-abort time archived on the timeline, gaps ignored.
    public var latestArchivedXactTime: PGTimestamp?
    /// Gaps on the path between the backup's start segment and the timeline's last archived segment.
    public var gaps: [SegmentGap]
}

/// What `check(against:)` found.
public struct CatalogDrift: Codable, Equatable, Sendable {
    /// Archived in the repository (a `.meta` exists) but not in the catalog: file names.
    public var missingFromCatalog: [String] = []
    /// In the catalog but the repository has no `.meta` for it any more: file names.
    public var missingFromRepository: [String] = []
    /// A `.meta` whose data object is absent: file names (the archive is damaged there).
    public var metaWithoutObject: [String] = []
    /// Backup labels with a record in the repository but not in the catalog, and the reverse.
    public var backupsMissingFromCatalog: [String] = []
    public var backupsMissingFromRepository: [String] = []
    /// Meta keys that could not be read or decoded.
    public var unreadable: [String] = []
    /// Segments with a safety-valve marker (and no meta) in the repository but no skip row in the
    /// catalog, and skip rows whose marker is not (or not yet) in the repository: file names.
    public var skippedMissingFromCatalog: [String] = []
    public var skippedMissingFromRepository: [String] = []
    /// Not drift: files (names) and backups (`backup LABEL`) an expire journaled or marked
    /// `expired` and has not finished removing (an interrupted run; the next expire finishes it).
    public var expiring: [String] = []

    public init() {}
    public var isClean: Bool {
        missingFromCatalog.isEmpty && missingFromRepository.isEmpty && metaWithoutObject.isEmpty &&
            backupsMissingFromCatalog.isEmpty && backupsMissingFromRepository.isEmpty && unreadable.isEmpty &&
            skippedMissingFromCatalog.isEmpty && skippedMissingFromRepository.isEmpty
    }
}

/// What `rebuild(from:...)` did.
public struct RebuildReport: Codable, Equatable, Sendable {
    public var segments = 0
    public var partialSegments = 0
    public var historyFiles = 0
    public var backupHistoryFiles = 0
    public var histories = 0
    public var backups = 0
    /// Safety-valve markers restored as skipped segments (markers of segments archived after all
    /// are not counted: no gap).
    public var skippedSegments = 0
    /// Drill records (`drill/<timestamp>.json`) read back.
    public var drills = 0
    /// Meta or backup keys that could not be read or decoded (with the reason), skipped.
    public var unreadable: [String] = []
    public var seconds = 0.0
    public init() {}

    // JSON (`walctl catalog rebuild --json`): counts are `...Count`.
    enum CodingKeys: String, CodingKey {
        case segments = "segmentCount", partialSegments = "partialSegmentCount", historyFiles = "historyFileCount"
        case backupHistoryFiles = "backupHistoryFileCount", histories = "timelineHistoryCount", backups = "backupCount"
        case skippedSegments = "skippedSegmentCount", unreadable, seconds
    }
}

/// Row counts and sizes, kept up to date on every insert (no table scans).
public struct CatalogCounts: Codable, Equatable, Sendable {
    public var segments: Int64 = 0
    public var partialSegments: Int64 = 0
    public var historyFiles: Int64 = 0
    public var backupHistoryFiles: Int64 = 0
    public var backups: Int64 = 0
    public var restorePoints: Int64 = 0
    public var timelines: Int64 = 0
    /// Sum of original / stored sizes of the archived segments.
    public var walBytes: Int64 = 0
    public var walStoredBytes: Int64 = 0
    public init() {}

    // JSON (`info --json` `counts`): counts are `...Count`, sizes `...Bytes`.
    enum CodingKeys: String, CodingKey {
        case segments = "segmentCount", partialSegments = "partialSegmentCount", historyFiles = "historyFileCount"
        case backupHistoryFiles = "backupHistoryFileCount", backups = "backupCount", restorePoints = "restorePointCount"
        case timelines = "timelineCount", walBytes, walStoredBytes
    }
}
