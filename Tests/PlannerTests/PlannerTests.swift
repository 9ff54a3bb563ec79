import Catalog
import Planner
import Testing
import WALFormat

let size = WALSegmentSize.default
/// 2026-01-01 00:00:00 UTC.
let base = PGTimestamp(unixSeconds: 1_767_225_600)
func at(_ s: Double) -> PGTimestamp { PGTimestamp(microseconds: base.microseconds + Int64((s * 1_000_000).rounded())) }
func name(_ tl: TimeLineID, _ s: XLogSegNo) -> String { SegmentID(timeline: tl, segno: s).fileName(size: size) }
func start(_ s: XLogSegNo) -> LSN { LSN.start(of: s, size: size) }

/// Timeline 1: segments 1...100, segment k holds commits from 100k to 100k+50 s.
/// Timeline 2 forks from 1 inside segment 60; its segments 60...80 hold commits from 100k+1 to 100k+45 s.
/// Backups: b1 (TL1, segment 3, stop 300 s), b2 (TL1, segment 10, stop 1000 s), b3 (TL2, segment 65, stop 6510 s).
/// Restore point "before-migration" in TL1 segment 40; "tl2-only" in TL2 segment 75.
func archive() -> FakeCatalog {
    let c = FakeCatalog()
    for k: XLogSegNo in 1...100 { add(c, 1, k, first: Double(k) * 100, last: Double(k) * 100 + 50) }
    for k: XLogSegNo in 60...80 { add(c, 2, k, first: Double(k) * 100 + 1, last: Double(k) * 100 + 45) }
    c.histories[2] = TimelineHistory(timeline: 2, entries: [.init(timeline: 1, switchPoint: start(60) + 0x100, reason: "before 2026-01-01 01:40:02+00")])
    c.backups = [backup("b1", tl: 1, startSeg: 3, stopSeg: 3, stop: 300), backup("b2", tl: 1, startSeg: 10, stopSeg: 10, stop: 1000),
                 backup("b3", tl: 2, startSeg: 65, stopSeg: 65, stop: 6510)]
    c.restorePoints = [PlanningRestorePoint(name: "before-migration", time: at(4004), lsn: start(40) + 4096, timeline: 1),
                       PlanningRestorePoint(name: "tl2-only", time: at(7504), lsn: start(75) + 4096, timeline: 2)]
    return c
}

func add(_ c: FakeCatalog, _ tl: TimeLineID, _ k: XLogSegNo, first: Double, last: Double) {
    c.segments[tl, default: [:]][k] = PlanningSegment(timeline: tl, segno: k, size: Int64(size.bytes), storedSize: 1_000_000,
                                                      firstXactTime: at(first), lastXactTime: at(last),
                                                      firstLSN: start(k) + 40, lastLSN: start(k) + 16_000_000)
}

func backup(_ label: String, tl: TimeLineID, startSeg: XLogSegNo, stopSeg: XLogSegNo, stop: Double) -> BackupRecord {
    BackupRecord(label: label, startLSN: start(startSeg) + 0x28, stopLSN: start(stopSeg) + 0x100, startTime: at(stop - 5),
                 stopTime: at(stop), timeline: tl, size: 30_000_000, storedSize: 4_000_000, status: .complete,
                 pgVersion: 150020, systemIdentifier: "7441234567890123456")
}

func plan(_ c: FakeCatalog, _ target: RecoveryTarget, inclusive: Bool = true, timeline: TimelineChoice = .latest,
          action: RecoveryAction = .pause) throws -> PlanResult {
    try RecoveryPlanner.plan(RecoveryRequest(target: target, inclusive: inclusive, timeline: timeline, action: action), catalog: c)
}

func setting(_ p: RecoveryPlan, _ n: String) -> String? { p.settings.first { $0.name == n }?.value }

@Suite struct TimeTargets {
    @Test func insideASegmentFarFromTheBackup() throws {
        let t = at(5523.123456)
        let p = try #require(try plan(archive(), .time(t), timeline: .number(1)).plan)
        #expect(p.backupLabel == "b2")
        #expect(p.firstSegment == name(1, 10))
        #expect(p.lastSegment == name(1, 55))
        #expect(p.segmentCount == 46)
        #expect(p.walBytes == 46 * Int64(size.bytes))
        #expect(p.walStoredBytes == 46_000_000)
        #expect(p.bytesToDownload == 46_000_000 + 4_000_000)
        #expect(p.timeline == 1 && p.historyFiles.isEmpty)
        #expect(p.target == PlanTarget(type: "time", value: t.iso8601, inclusive: true))
        #expect(setting(p, "recovery_target_time") == "2026-01-01 01:32:03.123456+00")
        #expect(setting(p, "recovery_target_inclusive") == "on")
        #expect(setting(p, "recovery_target_timeline") == "1")
        #expect(setting(p, "recovery_target_action") == "pause")
        #expect(p.estimatedRecoverySeconds > 0)
    }

    @Test func targetOnTheForkedTimeline() throws {
        let p = try #require(try plan(archive(), .time(at(7020))).plan)
        #expect(p.timeline == 2)
        #expect(p.backupLabel == "b3")
        #expect(p.firstSegment == name(2, 65) && p.lastSegment == name(2, 70))
        #expect(p.segmentCount == 6)
        #expect(p.historyFiles == ["00000002.history"])
        #expect(p.timelinePath.map(\.timeline) == [1, 2])
        #expect(setting(p, "recovery_target_timeline") == "2")
    }

    @Test func targetOnTheForkedTimelineFromABackupOnTheParent() throws {
        // b3 stops after the target: the backup on timeline 1 is used and the path crosses the fork.
        let p = try #require(try plan(archive(), .time(at(6300))).plan)
        #expect(p.backupLabel == "b2")
        #expect(p.segmentRanges.map { [$0.timeline, UInt32($0.firstSegno), UInt32($0.lastSegno)] } == [[1, 10, 59], [2, 60, 63]])
        #expect(p.segmentCount == 54)
    }

    @Test func targetOnTheParentBeforeTheFork() throws {
        let viaLatest = try #require(try plan(archive(), .time(at(5520))).plan)
        #expect(viaLatest.timeline == 2)
        #expect(viaLatest.lastSegment == name(1, 55))
        #expect(viaLatest.segmentRanges.map(\.timeline) == [1])
        // Timeline 1 explicitly, after the fork time: timeline 1's own later WAL.
        let onOne = try #require(try plan(archive(), .time(at(7020)), timeline: .number(1)).plan)
        #expect(onOne.backupLabel == "b2" && onOne.lastSegment == name(1, 70))
        #expect(onOne.historyFiles.isEmpty)
    }

    @Test func beforeTheFirstBackupIsRefused() throws {
        let r = try #require(try plan(archive(), .time(at(250))).refusal)
        #expect(r.reason == .beforeFirstBackup)
        #expect(r.nearestRecoverableAfter == at(301))
        #expect(r.nearestRecoverableBefore == nil)
    }

    @Test func afterTheLastCommitIsRefused() throws {
        let r = try #require(try plan(archive(), .time(at(10_100)), timeline: .number(1)).refusal)
        #expect(r.reason == .afterLastCommit)
        #expect(r.nearestRecoverableBefore == PGTimestamp(microseconds: at(10_050).microseconds - 1))
        #expect(r.nearestRecoverableAfter == nil)
        #expect(r.message.contains("pg_switch_wal"))
        // Exactly the last commit time, inclusive: nothing after it either.
        #expect(try plan(archive(), .time(at(10_050)), timeline: .number(1)).refusal?.reason == .afterLastCommit)
        // Exclusive: the last commit itself ends recovery.
        #expect(try plan(archive(), .time(at(10_050)), inclusive: false, timeline: .number(1)).plan?.lastSegment == name(1, 100))
    }

    @Test func behindAMissingSegmentIsRefused() throws {
        let c = archive()
        c.segments[1]![30] = nil
        c.backups.append(backup("b4", tl: 1, startSeg: 40, stopSeg: 40, stop: 4000))
        let r = try #require(try plan(c, .time(at(3520)), timeline: .number(1)).refusal)
        #expect(r.reason == .gap)
        #expect(r.missingSegments == [name(1, 30)])
        #expect(r.missingSegmentCount == 1)
        #expect(r.nearestRecoverableBefore == PGTimestamp(microseconds: at(2950).microseconds - 1))
        #expect(r.nearestRecoverableAfter == at(4001))
        #expect(r.message.contains(name(1, 30)))
        // Before the gap, and after the later backup, recovery works.
        #expect(try plan(c, .time(at(2920)), timeline: .number(1)).plan?.lastSegment == name(1, 29))
        #expect(try plan(c, .time(at(4520)), timeline: .number(1)).plan?.backupLabel == "b4")
    }

    @Test func exclusiveStopsAtACommitAtTheTargetInclusiveAfterIt() throws {
        let t = at(1550)   // exactly the last commit of segment 15
        let inc = try #require(try plan(archive(), .time(t), timeline: .number(1)).plan)
        let exc = try #require(try plan(archive(), .time(t), inclusive: false, timeline: .number(1)).plan)
        #expect(inc.lastSegment == name(1, 16))
        #expect(exc.lastSegment == name(1, 15))
        #expect(setting(exc, "recovery_target_inclusive") == "off")
        #expect(exc.target.inclusive == false)
    }

    @Test func aBackupThatStopsAfterTheTargetIsNeverChosen() throws {
        let c = archive()
        c.backups.append(backup("late", tl: 1, startSeg: 15, stopSeg: 15, stop: 1560))
        #expect(try plan(c, .time(at(1555)), timeline: .number(1)).plan?.backupLabel == "b2")
        #expect(try plan(c, .time(at(1600)), timeline: .number(1)).plan?.backupLabel == "late")
    }

    @Test func aBackupWhoseWALHoldsALaterCommitIsNotChosen() throws {
        // Its stop time says it ended before the target, but a commit after the target lies below its stop LSN.
        let c = archive()
        c.backups.append(backup("skewed", tl: 1, startSeg: 14, stopSeg: 17, stop: 1510))
        #expect(try plan(c, .time(at(1520)), timeline: .number(1)).plan?.backupLabel == "b2")
    }

    @Test func wholeSecondStopTimesAreConservative() throws {
        let c = archive()
        c.backups.append(backup("whole", tl: 1, startSeg: 15, stopSeg: 15, stop: 1500))
        // 1500 s may really be 1500.9 s, and segment 15 has commits after 1500.5 s: not provably safe.
        #expect(try plan(c, .time(at(1500.5)), timeline: .number(1)).plan?.backupLabel == "b2")
        #expect(try plan(c, .time(at(1501)), timeline: .number(1)).plan?.backupLabel == "whole")
    }
}

@Suite struct OtherTargets {
    @Test func restorePoint() throws {
        let p = try #require(try plan(archive(), .name("before-migration"), timeline: .number(1)).plan)
        #expect(p.backupLabel == "b2" && p.lastSegment == name(1, 40))
        #expect(setting(p, "recovery_target_name") == "before-migration")
        #expect(setting(p, "recovery_target_inclusive") == nil)
        let r = try #require(try plan(archive(), .name("tl2-only"), timeline: .number(1)).refusal)
        #expect(r.reason == .restorePointNotFound)
        #expect(r.message.contains("timeline 2"))
        #expect(try plan(archive(), .name("tl2-only")).plan?.backupLabel == "b3")
        #expect(try plan(archive(), .name("nope")).refusal?.reason == .restorePointNotFound)
    }

    @Test func lsn() throws {
        let p = try #require(try plan(archive(), .lsn(start(45) + 0x500), timeline: .number(1)).plan)
        #expect(p.backupLabel == "b2" && p.lastSegment == name(1, 45))
        #expect(setting(p, "recovery_target_lsn") == (start(45) + 0x500).description)
        // In the zero-filled tail after the last record: the next segment holds the stop record.
        #expect(try plan(archive(), .lsn(start(45) + 16_500_000), timeline: .number(1)).plan?.lastSegment == name(1, 46))
        #expect(try plan(archive(), .lsn(start(2)), timeline: .number(1)).refusal?.reason == .beforeFirstBackup)
        #expect(try plan(archive(), .lsn(start(200)), timeline: .number(1)).refusal?.reason == .targetNotArchived)
    }

    @Test func immediateAndLatest() throws {
        let i = try #require(try plan(archive(), .immediate, timeline: .number(1)).plan)
        #expect(i.backupLabel == "b2" && i.firstSegment == name(1, 10) && i.lastSegment == name(1, 10) && i.segmentCount == 1)
        #expect(setting(i, "recovery_target") == "immediate")
        let l = try #require(try plan(archive(), .latest, action: .promote).plan)
        #expect(l.backupLabel == "b3" && l.lastSegment == name(2, 80))
        #expect(setting(l, "recovery_target_action") == nil)
        #expect(l.settings.map(\.name) == ["recovery_target_timeline"])
    }

    @Test func xidPlansFromTheEarliestBackupToTheEnd() throws {
        let p = try #require(try plan(archive(), .xid(12345), timeline: .number(1)).plan)
        #expect(p.backupLabel == "b1" && p.lastSegment == name(1, 100))
        #expect(setting(p, "recovery_target_xid") == "12345")
        #expect(!p.warnings.isEmpty)
    }

    @Test func xidThatEndedBeforeTheEarliestBackupIsRefused() throws {
        func planXid(_ x: UInt64, _ h: XidHorizon) throws -> PlanResult {
            try RecoveryPlanner.plan(RecoveryRequest(target: .xid(x), timeline: .number(1), xidHorizons: ["b1": h]), catalog: archive())
        }
        let h = XidHorizon(checkpoint: start(3) + 0x60, nextXid: 800, oldestActiveXid: 790)
        let refused = try #require(try planXid(789, h).refusal)
        #expect(refused.reason == .beforeFirstBackup)
        #expect(refused.message.contains("transaction 789") && refused.message.contains("b1"))
        #expect(refused.nearestRecoverableAfter != nil)
        #expect(try planXid(790, h).plan != nil)          // still running at the checkpoint: may end later
        #expect(try planXid(5000, h).plan != nil)
        // A later backup's horizon is not the earliest backup's: no refusal.
        #expect(try RecoveryPlanner.plan(RecoveryRequest(target: .xid(10), timeline: .number(1), xidHorizons: ["b2": h]),
                                         catalog: archive()).plan != nil)
    }

    @Test func xidHorizonAcrossEpochs() {
        // Epoch 2, next xid 100: the oldest active xid 4_294_967_000 is from epoch 1 (wrapped since).
        let h = XidHorizon(checkpoint: start(3) + 0x60, nextXid: 2 << 32 | 100, oldestActiveXid: 4_294_967_000)
        #expect(h.oldestActiveFull == 1 << 32 | 4_294_967_000)
        #expect(h.ended(1 << 32 | 4_294_966_999))      // 64-bit ids compare as numbers
        #expect(!h.ended(2 << 32 | 50))
        #expect(h.ended(4_294_966_999))                 // 32-bit ids compare modulo 2^32, as PostgreSQL does
        #expect(!h.ended(50))                           // 50 of epoch 2 (wrapped past the horizon)
        #expect(!h.ended(4_294_967_000))
        let e0 = XidHorizon(checkpoint: start(3) + 0x60, nextXid: 800, oldestActiveXid: 790)
        #expect(e0.ended(3) && e0.ended(789) && !e0.ended(790) && !e0.ended(1 << 32 | 3))
    }

    @Test func timelines() throws {
        #expect(try plan(archive(), .latest, timeline: .number(7)).refusal?.reason == .unknownTimeline)
        let c = archive()
        add(c, 3, 81, first: 8100, last: 8150)
        let r = try #require(try plan(c, .latest).refusal)
        #expect(r.reason == .missingHistory && r.missingHistoryFiles == ["00000003.history"])
        #expect(try plan(FakeCatalog(), .latest).refusal?.reason == .emptyArchive)
        let noBackups = archive()
        noBackups.backups = []
        #expect(try plan(noBackups, .time(at(500))).refusal?.reason == .noBackup)
    }
}

/// Segments the safety valve reported archived without storing them (issue 8): refused as
/// `skipped`, naming them, with the nearest recoverable times; targets before them still plan.
@Suite struct SafetyValveSkips {
    /// `archive()` with segment 30 of timeline 1 let go by the valve, and a backup after it.
    func skippedArchive() -> FakeCatalog {
        let c = archive()
        c.segments[1]![30] = nil
        c.skipped = [SkippedSegment(name: name(1, 30), timeline: 1, segno: 30, reason: "archive backlog 20000000000 bytes exceeds archive-push-queue-max 17179869184",
                                    skippedAt: at(3060), size: Int64(size.bytes))]
        c.backups.append(backup("b4", tl: 1, startSeg: 40, stopSeg: 40, stop: 4000))
        return c
    }

    @Test func aTargetAcrossASkippedSegmentIsRefusedAsSkipped() throws {
        let c = skippedArchive()
        let r = try #require(try plan(c, .time(at(3520)), timeline: .number(1)).refusal)
        #expect(r.reason == .skipped)
        #expect(r.skippedSegments.map(\.name) == [name(1, 30)])
        #expect(r.missingSegments == [name(1, 30)] && r.missingSegmentCount == 1)
        #expect(r.message.contains(name(1, 30)) && r.message.contains("archive-push-queue-max") && r.message.contains("new base backup"))
        #expect(r.nearestRecoverableBefore == PGTimestamp(microseconds: at(2950).microseconds - 1))
        #expect(r.nearestRecoverableAfter == at(4001))
        // Every target kind that crosses it.
        #expect(try plan(c, .xid(7), timeline: .number(1)).refusal?.reason == .skipped)
        #expect(try plan(c, .lsn(start(35)), timeline: .number(1)).refusal?.reason == .skipped)
    }

    @Test func targetsBeforeTheSkipOrAfterALaterBackupStillPlan() throws {
        let c = skippedArchive()
        let before = try #require(try plan(c, .time(at(2920)), timeline: .number(1)).plan)
        #expect(before.backupLabel == "b2" && before.lastSegment == name(1, 29))
        #expect(try plan(c, .time(at(4520)), timeline: .number(1)).plan?.backupLabel == "b4")
        #expect(try plan(c, .latest, timeline: .number(1)).plan?.backupLabel == "b4")
    }

    @Test func aPlainGapBesideASkipIsCountedInTheMessage() throws {
        let c = skippedArchive()
        c.segments[1]![31] = nil
        let r = try #require(try plan(c, .time(at(3520)), timeline: .number(1)).refusal)
        #expect(r.reason == .skipped)
        #expect(r.missingSegmentCount == 2 && r.skippedSegments.count == 1)
        #expect(r.message.contains("1 more segment(s) are missing"))
        // Without the skip record the same hole is an ordinary gap.
        c.skipped = []
        #expect(try plan(c, .time(at(3520)), timeline: .number(1)).refusal?.reason == .gap)
    }
}
