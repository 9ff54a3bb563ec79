/// A named restore point found in WAL (`pg_create_restore_point`).
public struct RestorePoint: Codable, Equatable, Sendable {
    public var name: String
    public var time: PGTimestamp
    public var lsn: LSN
    public init(name: String, time: PGTimestamp, lsn: LSN) { self.name = name; self.time = time; self.lsn = lsn }
}

/// A checkpoint record found in WAL.
public struct CheckpointInfo: Codable, Equatable, Sendable {
    public var lsn: LSN
    /// `CheckPoint.time`, whole seconds.
    public var time: PGTimestamp
    /// True for a shutdown checkpoint (including the end-of-recovery one).
    public var shutdown: Bool
    /// `CheckPoint.redo`: where replay from this checkpoint starts (a backup's START WAL LOCATION).
    public var redo: LSN?
    /// `CheckPoint.nextXid` (epoch in the high 32 bits): the next transaction id to be assigned.
    public var nextXid: UInt64?
    /// `CheckPoint.oldestActiveXid`: every transaction id before it had ended when the checkpoint was
    /// written (0, and so absent, unless `wal_level` is replica or logical and the checkpoint online).
    public var oldestActiveXid: UInt32?
    public init(lsn: LSN, time: PGTimestamp, shutdown: Bool, redo: LSN? = nil, nextXid: UInt64? = nil, oldestActiveXid: UInt32? = nil) {
        self.lsn = lsn; self.time = time; self.shutdown = shutdown
        self.redo = redo; self.nextXid = nextXid; self.oldestActiveXid = oldestActiveXid
    }
}

/// What one WAL segment covers, computed at archive time from the bytes already in memory.
///
/// Counting rule: a record belongs to the segment in which it *starts*. A segment that begins with
/// the tail of a record from the previous segment skips that tail; a record that continues into the
/// next segment is counted here, and its CRC is not checked (it cannot be from one file): that is not
/// a CRC failure.
public struct SegmentSummary: Codable, Equatable, Sendable {
    /// Records that start in this segment.
    public var records: Int = 0
    /// COMMIT and COMMIT_PREPARED records.
    public var commits: Int = 0
    /// ABORT and ABORT_PREPARED records.
    public var aborts: Int = 0
    /// Time of the first / last commit (including commit prepared), nil when there is none.
    public var firstCommitTime: PGTimestamp?
    public var lastCommitTime: PGTimestamp?
    /// Time of the first / last commit *or abort*: the records `recovery_target_time` is tested
    /// against. The planner uses these.
    public var firstXactTime: PGTimestamp?
    public var lastXactTime: PGTimestamp?
    public var restorePoints: [RestorePoint] = []
    public var checkpoints: [CheckpointInfo] = []
    /// The segment ends with an XLOG_SWITCH record (the rest is zeros).
    public var endsWithSwitch: Bool = false
    /// Records whose CRC-32C did not match.
    public var crcFailures: Int = 0
    /// Start LSNs of the records that failed their CRC (at most the first 100).
    public var crcFailureLSNs: [LSN] = []
    /// Start LSN of the first / last record that starts in the segment.
    public var firstLSN: LSN?
    public var lastLSN: LSN?
    /// The last record continues into the next segment.
    public var continuesIntoNext: Bool = false

    // Fields added by the record decoder. Optional, so summaries stored before they existed still decode.

    /// PostgreSQL major version named by the page magic (12-18).
    public var pgMajorVersion: Int?
    /// The segment begins with the tail of a record that started in the previous segment (skipped).
    public var startsInsideRecord: Bool?
    /// The last record continues into the next segment and its bytes there were not available: it is
    /// counted, its CRC is not checked, and its time (commit, abort, checkpoint, restore point) is
    /// used only when those bytes lie in this segment.
    public var lastRecordIncomplete: Bool?
    /// Smallest / largest commit-or-abort time in the segment. Commit times are not strictly monotonic in
    /// WAL order under concurrency, so these may differ from `firstXactTime` / `lastXactTime` by a few
    /// microseconds; range queries should use these.
    public var earliestXactTime: PGTimestamp?
    public var latestXactTime: PGTimestamp?
    /// Where valid WAL stopped inside the segment without an XLOG_SWITCH: a zeroed tail (the end of
    /// written WAL, as in a `.partial` file), a recycled tail, or damage. Nil when the segment is
    /// complete (records run to its end, into the next segment, or up to a switch).
    public var endOfWAL: LSN?
    /// Why reading stopped at `endOfWAL`, for operators.
    public var endOfWALReason: String?
    /// Set by archive-push when `damage(for:)` judged this complete segment damaged: the first damaged
    /// LSN and what is wrong. Nil for sound WAL, for `.partial` files, and in metas written before
    /// these fields existed (apply `damage(for:)` to those).
    public var damagedAt: LSN?
    public var damageReason: String?

    public init() {}
}

extension LSN: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let l = LSN(s) else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad LSN \(s)") }
        self = l
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A CREATE TABLESPACE record: replaying it makes the server create the tablespace at `location`.
public struct TablespaceCreation: Equatable, Sendable {
    public var lsn: LSN
    public var oid: UInt32
    public var location: String
    public init(lsn: LSN, oid: UInt32, location: String) { self.lsn = lsn; self.oid = oid; self.location = location }
}
