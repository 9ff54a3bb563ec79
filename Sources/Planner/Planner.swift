import Catalog
import WALFormat

/// The recovery planner: a pure function from a catalog snapshot and a request to a plan or a
/// refusal. It reads only through `PlanningCatalog` and has no other input or effect, so the same
/// snapshot always gives the same answer (docs/recovery.md has the rules with their sources).
public enum RecoveryPlanner {
    /// Plans `request` against `catalog`.
    ///
    /// - Returns: `.ready(plan)` when every segment and history file the recovery needs is archived
    ///   and a base backup ends before the target; `.refused` with the reason otherwise.
    /// - Throws: only what the catalog throws (it could not be read).
    public static func plan(_ request: RecoveryRequest, catalog: some PlanningCatalog) throws -> PlanResult {
        var p = Planning(catalog: catalog, request: request)
        do {
            return .ready(try p.run())
        } catch let r as PlanRefusal {
            return .refused(r)
        }
    }
}

/// The state of one planning run.
struct Planning<C: PlanningCatalog> {
    let catalog: C
    let request: RecoveryRequest
    let size: WALSegmentSize
    var timeline: TimeLineID = 1
    var path: TimelinePath = []
    var warnings: [String] = []

    init(catalog: C, request: RecoveryRequest) {
        self.catalog = catalog; self.request = request
        size = catalog.planningSegmentSize
    }

    func refuse(_ reason: RefusalReason, _ message: String) -> PlanRefusal {
        PlanRefusal(reason: reason, message: message, timeline: timeline)
    }

    // MARK: Path and ownership

    /// Segment numbers owned by a path element (see `PlanningCatalog`), nil when none.
    func owned(_ e: (timeline: TimeLineID, begin: LSN, end: LSN?)) -> ClosedRange<XLogSegNo>? {
        let first = e.begin.segment(size: size)
        guard let end = e.end else { return first...XLogSegNo(Int64.max) }
        let endSeg = end.segment(size: size)
        guard endSeg > first else { return nil }
        return first...(endSeg - 1)
    }

    /// The timeline recovery reads segment `segno` from.
    func owner(of segno: XLogSegNo) -> TimeLineID {
        for e in path.reversed() where e.begin.segment(size: size) <= segno { return e.timeline }
        return path.first?.timeline ?? timeline
    }

    /// The timeline that owns WAL position `lsn` on the path.
    func owner(ofLSN lsn: LSN) -> TimeLineID {
        for e in path where e.end.map({ lsn < $0 }) ?? true { return e.timeline }
        return timeline
    }

    func name(_ segno: XLogSegNo) -> String { SegmentID(timeline: owner(of: segno), segno: segno).fileName(size: size) }

    /// True when backup `b` lies on the path: taken on a path timeline inside that timeline's part.
    func onPath(_ b: BackupRecord) -> Bool {
        path.contains { e in b.timeline == e.timeline && b.startLSN >= e.begin && (e.end.map { b.stopLSN <= $0 } ?? true) }
    }

    /// The segment holding the last byte of the backup (its `XLOG_BACKUP_END` record ends at stop LSN).
    func stopSegment(_ b: BackupRecord) -> XLogSegNo { LSN(max(b.stopLSN.value, 1) - 1).segment(size: size) }
    func startSegment(_ b: BackupRecord) -> XLogSegNo { b.startLSN.segment(size: size) }

    /// The latest instant the backup's end may really be at. Backup history files print whole
    /// seconds (pg-facts §8): a stop time without a fraction may be up to 999999 µs later.
    static func conservativeStop(_ b: BackupRecord) -> PGTimestamp {
        b.stopTime.microseconds % 1_000_000 == 0 ? PGTimestamp(microseconds: b.stopTime.microseconds + 999_999) : b.stopTime
    }

    mutating func resolveTimeline() throws -> [BackupRecord] {
        try resolvePath()
        let backups = try completeBackupsOnPath()
        guard !backups.isEmpty else {
            throw refuse(.noBackup, "no complete base backup on the path to timeline \(timeline) (\(pathText)): take one with `walctl backup`")
        }
        return backups
    }

    /// The complete backups on the path, oldest stop first.
    func completeBackupsOnPath() throws -> [BackupRecord] {
        try catalog.planningBackups().filter { $0.status == .complete && onPath($0) }
            .sorted { ($0.stopTime, $0.stopLSN) < ($1.stopTime, $1.stopLSN) }
    }

    /// Sets `timeline` from the request and `path` from its archived history.
    mutating func resolvePath() throws {
        let known = try catalog.planningTimelines()
        switch request.timeline {
        case .latest:
            guard let last = known.last else {
                throw refuse(.emptyArchive, "the archive holds no WAL: nothing can be recovered (is archive_command set to walctl archive-push?)")
            }
            timeline = last
        case .number(let n):
            timeline = n
            guard known.contains(n) else {
                throw refuse(.unknownTimeline, "timeline \(n) is not in the archive (archived timelines: \(known.map(String.init).joined(separator: ", ")))")
            }
        }
        if timeline > 1 {
            guard let h = try catalog.planningHistory(of: timeline) else {
                var r = refuse(.missingHistory, "timeline \(timeline) has no archived history file \(hex8(UInt64(timeline))).history: without it recovery cannot know where timeline \(timeline) branched off; archive it (it is in pg_wal of the server that created the timeline)")
                r.missingHistoryFiles = [hex8(UInt64(timeline)) + ".history"]
                throw r
            }
            path = h.path
        } else {
            path = [(timeline: timeline, begin: LSN(0), end: nil)]
        }
    }

    var pathText: String {
        path.map { e in "timeline \(e.timeline) from \(e.begin)" + (e.end.map { " to \($0)" } ?? "") }.joined(separator: ", ")
    }

    // MARK: Gaps and sizes

    /// Missing segments in `first...last` along the path, each looked for on the timeline that owns it.
    func gaps(_ first: XLogSegNo, _ last: XLogSegNo) throws -> [PlanSegmentRange] {
        guard first <= last else { return [] }
        var out: [PlanSegmentRange] = []
        for e in path {
            guard let r = owned(e) else { continue }
            let lo = max(first, r.lowerBound), hi = min(last, r.upperBound)
            guard lo <= hi else { continue }
            var next = lo
            for run in try catalog.planningArchivedRuns(timeline: e.timeline, from: lo, to: hi) {
                if run.lowerBound > next { out.append(PlanSegmentRange(timeline: e.timeline, first: next, last: run.lowerBound - 1, size: size)) }
                if run.upperBound >= next { next = run.upperBound &+ 1 }
                if next > hi || run.upperBound == XLogSegNo.max { break }
            }
            if next <= hi { out.append(PlanSegmentRange(timeline: e.timeline, first: next, last: hi, size: size)) }
        }
        return out
    }

    /// The first archived segment along the path (nil when none).
    func firstArchived() throws -> XLogSegNo? {
        for e in path {
            guard let r = owned(e) else { continue }
            if let run = try catalog.planningArchivedRuns(timeline: e.timeline, from: r.lowerBound, to: r.upperBound).first {
                return max(run.lowerBound, r.lowerBound)
            }
        }
        return nil
    }

    /// The last archived segment along the path (nil when none).
    func lastArchived() throws -> XLogSegNo? {
        for e in path.reversed() {
            guard let r = owned(e) else { continue }
            if let run = try catalog.planningArchivedRuns(timeline: e.timeline, from: r.lowerBound, to: r.upperBound).last {
                return min(run.upperBound, r.upperBound)
            }
        }
        return nil
    }

    /// `first...last` split by owning timeline.
    func ranges(_ first: XLogSegNo, _ last: XLogSegNo) -> [PlanSegmentRange] {
        path.compactMap { e in
            guard let r = owned(e) else { return nil }
            let lo = max(first, r.lowerBound), hi = min(last, r.upperBound)
            return lo <= hi ? PlanSegmentRange(timeline: e.timeline, first: lo, last: hi, size: size) : nil
        }
    }

    /// A refusal naming the missing segments, with the nearest recoverable times on either side:
    /// `skipped` when the safety valve let any of them go, else `gap`.
    func gapRefusal(_ gaps: [PlanSegmentRange], backup: BackupRecord, backups: [BackupRecord], what: String) throws -> PlanRefusal {
        let total = gaps.reduce(UInt64(0)) { $0 + $1.count }
        let listed = gaps.prefix(3).map { $0.count == 1 ? $0.firstName : "\($0.firstName) ... \($0.lastName) (\($0.count))" }
        var skipped: [SkippedSegment] = []
        for g in gaps where skipped.count < PlanRefusal.missingSegmentsListed {
            skipped += try catalog.planningSkippedSegments(timeline: g.timeline, from: g.firstSegno, to: g.lastSegno)
        }
        skipped = Array(skipped.prefix(PlanRefusal.missingSegmentsListed))
        var r: PlanRefusal
        if let first = skipped.first {
            let shown = skipped.prefix(3).map { "\($0.name) (skipped \($0.skippedAt.postgresLiteral): \($0.reason))" }
            let others = total - UInt64(skipped.count)
            r = refuse(.skipped, "\(skipped.count) WAL segment(s) between backup \(backup.label) and \(what) were reported archived WITHOUT being stored by the safety valve: \(shown.joined(separator: ", "))\(skipped.count > 3 ? ", ..." : "")\(others > 0 ? "; \(others) more segment(s) are missing" : ""). Point-in-time recovery cannot cross \(first.name): choose a target before it, or one after a base backup taken after it (take a new base backup now if there is none)")
            r.skippedSegments = skipped
        } else {
            r = refuse(.gap, "\(total) WAL segment(s) between backup \(backup.label) and \(what) are not archived: \(listed.joined(separator: ", "))\(gaps.count > 3 ? ", ..." : ""); recovery would stop at the first one. Restore them into the repository, or choose a target before the gap or after a backup taken after it")
        }
        r.gaps = gaps
        r.missingSegmentCount = total
        var names: [String] = []
        outer: for g in gaps {
            for s in g.firstSegno...g.lastSegno {
                if names.count >= PlanRefusal.missingSegmentsListed { break outer }
                names.append(SegmentID(timeline: g.timeline, segno: s).fileName(size: size))
            }
        }
        r.missingSegments = names
        r.nearestRecoverableBefore = try latestTarget(before: gaps[0].firstSegno, backup: backup)
        let gapEnd = gaps[gaps.count - 1].lastSegno
        r.nearestRecoverableAfter = try earliestTarget(backups.filter { startSegment($0) > gapEnd })
        return r
    }

    /// The latest time target recoverable from `backup` with the segments before `segno`: just
    /// before the latest commit or abort archived there (recovery must see a later record to stop).
    func latestTarget(before segno: XLogSegNo, backup: BackupRecord) throws -> PGTimestamp? {
        guard segno > 0, let t = try catalog.planningLatestXactTime(on: path, upTo: segno - 1) else { return nil }
        let target = PGTimestamp(microseconds: t.microseconds - 1)
        return target > Self.conservativeStop(backup) ? target : nil
    }

    /// The earliest time target recoverable from the first of `backups` (oldest first): just after
    /// its (conservative) stop time, rounded up to a whole second when the stop time is whole.
    func earliestTarget(_ backups: [BackupRecord]) throws -> PGTimestamp? {
        guard let b = backups.first else { return nil }
        return PGTimestamp(microseconds: Self.conservativeStop(b).microseconds + 1)
    }

    // MARK: Targets

    mutating func run() throws -> RecoveryPlan {
        let backups = try resolveTimeline()
        let backup: BackupRecord
        let last: XLogSegNo
        var expected: String
        var targetSettings: [RecoverySetting] = []
        var planTarget = PlanTarget(type: request.target.kind, value: nil,
                                    inclusive: request.target.takesInclusive ? request.inclusive : nil)
        switch request.target {
        case .time(let t):
            planTarget.value = t.iso8601
            (backup, last, expected) = try planTime(t, backups: backups)
            targetSettings = [.init(name: "recovery_target_time", value: t.postgresLiteral)]
        case .lsn(let l):
            planTarget.value = l.description
            (backup, last, expected) = try planLSN(l, backups: backups)
            targetSettings = [.init(name: "recovery_target_lsn", value: l.description)]
        case .name(let n):
            planTarget.value = n
            (backup, last, expected) = try planName(n, backups: backups)
            targetSettings = [.init(name: "recovery_target_name", value: n)]
        case .xid(let x):
            planTarget.value = String(x)
            backup = backups[0]
            if let h = request.xidHorizons[backup.label], h.ended(x) {
                var r = refuse(.beforeFirstBackup, "transaction \(x) ended before the earliest base backup on timeline \(timeline) (\(backup.label)) was consistent: its starting checkpoint at \(h.checkpoint) records every transaction before \(h.oldestActiveFull) as ended, so recovery cannot stop at it (PostgreSQL would stop with \"requested recovery stop point is before consistent recovery point\"). Choose a later transaction, or a time, LSN or restore point after the backup")
                r.nearestRecoverableAfter = try earliestTarget(backups)
                throw r
            }
            last = try planToEnd(backup: backup, backups: backups)
            expected = "at the \(request.inclusive ? "commit or abort" : "start of the commit or abort") of transaction \(x) (not indexed: planned from the earliest backup to the end of the archive)"
            warnings.append("the catalog does not index transaction ids: the plan replays from the earliest backup on the path (\(backup.label)) to the end of the archive; if transaction \(x) ended before that backup's end, or is not archived, PostgreSQL 13+ stops with \"recovery ended before configured recovery target was reached\"")
            targetSettings = [.init(name: "recovery_target_xid", value: String(x))]
        case .immediate:
            backup = backups[backups.count - 1]
            last = stopSegment(backup)
            expected = "as soon as backup \(backup.label) is consistent, at \(backup.stopLSN)"
            let missing = try gaps(startSegment(backup), last)
            if !missing.isEmpty { throw try gapRefusal(missing, backup: backup, backups: backups, what: "its end") }
            targetSettings = [.init(name: "recovery_target", value: "immediate")]
        case .latest:
            backup = backups[backups.count - 1]
            last = try planToEnd(backup: backup, backups: backups)
            expected = "at the end of the archived WAL (segment \(name(last))); WAL not yet archived (still in the old server's pg_wal) is not replayed"
        }
        if request.target.takesInclusive {
            targetSettings.append(.init(name: "recovery_target_inclusive", value: request.inclusive ? "on" : "off"))
        }
        targetSettings.append(.init(name: "recovery_target_timeline", value: String(timeline)))
        if request.target != .latest {
            targetSettings.append(.init(name: "recovery_target_action", value: request.action.rawValue))
        } else if request.action != .promote {
            warnings.append("without a target PostgreSQL ignores recovery_target_action and promotes at the end of the archived WAL")
        }
        return try finish(backup: backup, last: last, target: planTarget, expected: expected, settings: targetSettings)
    }

    /// Time target: the newest backup that ends before `t`, and the segment holding the first
    /// commit or abort after `t` (at or after it when exclusive), which recovery must see to stop.
    mutating func planTime(_ t: PGTimestamp, backups: [BackupRecord]) throws -> (BackupRecord, XLogSegNo, String) {
        let stop = try catalog.planningFirstSegment(reaching: t, on: path, inclusive: request.inclusive)
        func eligible(_ b: BackupRecord) -> Bool {
            guard b.stopTime < t else { return false }
            guard let s = stop else { return true }
            let ss = stopSegment(b)
            if s.segno < ss { return false }        // a record past the target lies inside the backup
            return Self.conservativeStop(b) < t || s.segno > ss
        }
        guard let backup = backups.last(where: eligible) else {
            let after = try earliestTarget(backups)
            var r = refuse(.beforeFirstBackup, "\(t.postgresLiteral) is before the end of the earliest usable base backup on timeline \(timeline) (\(backups[0].label), stopped at \(backups[0].stopTime.postgresLiteral)): a backup that ends after the target would silently contain later commits. The earliest recoverable target is \(after.map(\.postgresLiteral) ?? "unknown")")
            r.nearestRecoverableAfter = after
            throw r
        }
        guard let s = stop else {
            let end = try lastArchived() ?? startSegment(backup)
            let missing = try gaps(startSegment(backup), end)
            let before = try latestTarget(before: (missing.first?.firstSegno ?? end &+ 1), backup: backup)
            let lastXact = try catalog.planningLatestXactTime(on: path, upTo: end)
            var r = refuse(.afterLastCommit, "no commit or abort \(request.inclusive ? "after" : "at or after") \(t.postgresLiteral) is archived on timeline \(timeline) (the last archived one is at \(lastXact.map(\.postgresLiteral) ?? "none")): recovery could not see the record that ends it and PostgreSQL 13+ would stop with \"recovery ended before configured recovery target was reached\". If the server is still running, write one and archive it: psql -c 'SELECT pg_current_xact_id()' -c 'SELECT pg_switch_wal()' (txid_current() before PostgreSQL 13), wait until it is archived, then plan again")
            r.nearestRecoverableBefore = before
            throw r
        }
        let first = startSegment(backup)
        let missing = try gaps(first, s.segno)
        if !missing.isEmpty { throw try gapRefusal(missing, backup: backup, backups: backups, what: "the target") }
        let expected = "before the first commit or abort with a time \(request.inclusive ? "after" : "at or after") \(t.postgresLiteral), in segment \(name(s.segno))"
        return (backup, s.segno, expected)
    }

    /// LSN target: the newest backup consistent at or before the LSN; WAL up to a record starting at
    /// or after it (the stop test needs one).
    mutating func planLSN(_ l: LSN, backups: [BackupRecord]) throws -> (BackupRecord, XLogSegNo, String) {
        guard let backup = backups.last(where: { $0.stopLSN <= l }) else {
            throw refuse(.beforeFirstBackup, "LSN \(l) is before the end of the earliest base backup on timeline \(timeline) (\(backups[0].label), consistent at \(backups[0].stopLSN)): PostgreSQL would stop before a consistent state")
        }
        var last = l.segment(size: size)
        let end = try lastArchived()
        if let seg = try catalog.planningSegment(timeline: owner(of: last), segno: last), let lastRecord = seg.lastLSN, lastRecord < l {
            last += 1   // no record starts at or after the target in its segment: the next one holds it
        }
        guard let end, end >= last else {
            throw refuse(.targetNotArchived, "LSN \(l) is beyond the archived WAL on timeline \(timeline) (last archived segment \(try lastArchived().map(name) ?? "none")): archive more WAL (SELECT pg_switch_wal()) and plan again")
        }
        let missing = try gaps(startSegment(backup), last)
        if !missing.isEmpty { throw try gapRefusal(missing, backup: backup, backups: backups, what: "LSN \(l)") }
        let expected = request.inclusive ? "after the record at \(l), on timeline \(owner(ofLSN: l))" : "before the first record at or after \(l), on timeline \(owner(ofLSN: l))"
        return (backup, last, expected)
    }

    /// Restore point target: recovery stops after the first restore point of that name it replays,
    /// so the backup must start before it and be consistent by then.
    mutating func planName(_ n: String, backups: [BackupRecord]) throws -> (BackupRecord, XLogSegNo, String) {
        let all = try catalog.planningRestorePoints(named: n)
        let points = all.filter { owner(ofLSN: $0.lsn) == $0.timeline }.sorted { $0.lsn < $1.lsn }
        guard !points.isEmpty else {
            let elsewhere = all.map { "timeline \($0.timeline) at \($0.lsn)" }
            throw refuse(.restorePointNotFound, "no restore point named \"\(n)\" is archived on the path to timeline \(timeline)" +
                         (elsewhere.isEmpty ? "" : " (it exists on \(elsewhere.joined(separator: ", ")): choose that timeline with --timeline)"))
        }
        for b in backups.reversed() {
            guard let rp = points.first(where: { $0.lsn >= b.startLSN }), rp.lsn >= b.stopLSN else { continue }
            if points.count > 1 { warnings.append("\(points.count) restore points are named \"\(n)\" on this path: recovery stops at the first after the backup's start, at \(rp.lsn)") }
            var last = rp.lsn.segment(size: size)
            if rp.lsn.offset(size: size) > size.bytes - 256 { last += 1 }  // the record may continue into the next segment
            let missing = try gaps(startSegment(b), last)
            if !missing.isEmpty { throw try gapRefusal(missing, backup: b, backups: backups, what: "restore point \"\(n)\"") }
            return (b, last, "after restore point \"\(n)\" at \(rp.lsn) (created \(rp.time.postgresLiteral)) on timeline \(rp.timeline)")
        }
        throw refuse(.beforeFirstBackup, "restore point \"\(n)\" (at \(points[0].lsn), \(points[0].time.postgresLiteral)) is before the end of every base backup on timeline \(timeline)")
    }

    /// Latest and xid targets: everything archived on the path after the backup, which must have no gap.
    func planToEnd(backup: BackupRecord, backups: [BackupRecord]) throws -> XLogSegNo {
        let first = startSegment(backup)
        guard let end = try lastArchived(), end >= stopSegment(backup) else {
            throw refuse(.targetNotArchived, "the WAL of backup \(backup.label) (to \(backup.stopLSN)) is not archived on timeline \(timeline)")
        }
        let missing = try gaps(first, end)
        if !missing.isEmpty { throw try gapRefusal(missing, backup: backup, backups: backups, what: "the end of the archive") }
        return end
    }

    // MARK: The plan

    func finish(backup: BackupRecord, last: XLogSegNo, target: PlanTarget, expected: String,
                settings: [RecoverySetting]) throws -> RecoveryPlan {
        let first = startSegment(backup)
        let segs = ranges(first, last)
        var sizes = PlanningSizes()
        for r in segs {
            let s = try catalog.planningSizes(timeline: r.timeline, from: r.firstSegno, to: r.lastSegno)
            sizes.segments += s.segments; sizes.bytes += s.bytes; sizes.storedBytes += s.storedBytes
        }
        let m = request.costModel
        // An incremental restores with its chain: every member is read (docs/backup.md).
        let chain = backup.type == .incremental ? ((try? BackupChain.chain(of: backup, in: try catalog.planningBackups())) ?? [backup]) : [backup]
        let backupStored = chain.reduce(Int64(0)) { $0 + ($1.storedSize ?? $1.size) }
        let restore = Double(backupStored) / m.downloadBytesPerSecond + Double(backup.size) / m.restoreWriteBytesPerSecond
        let replay = Double(sizes.segments) * m.perSegmentSeconds + Double(sizes.storedBytes) / m.downloadBytesPerSecond +
            Double(sizes.bytes) / m.replayBytesPerSecond
        return RecoveryPlan(
            target: target, timeline: timeline,
            timelinePath: path.map { PlanPathElement(timeline: $0.timeline, begin: $0.begin.description, end: $0.end?.description) },
            backupLabel: backup.label, backup: backup,
            firstSegment: name(first), lastSegment: name(last), segmentCount: Int64(last - first + 1), segmentRanges: segs,
            historyFiles: timeline > 1 ? [hex8(UInt64(timeline)) + ".history"] : [],
            walBytes: sizes.bytes, walStoredBytes: sizes.storedBytes, backupStoredBytes: backupStored,
            bytesToDownload: backupStored + sizes.storedBytes,
            estimatedRestoreSeconds: (restore * 10).rounded() / 10, estimatedReplaySeconds: (replay * 10).rounded() / 10,
            estimatedRecoverySeconds: ((restore + replay) * 10).rounded() / 10,
            expectedStop: expected, action: request.action, settings: settings, warnings: warnings,
            backupChain: chain.count > 1 ? chain.map(\.label) : nil)
    }
}
