import Catalog
import Planner
import Testing
import WALFormat

extension FakeCatalog: RetentionCatalog {
    func retentionFiles() throws -> [RetentionFile] { files }
}

/// Timeline 1: segments 1...100 (segment k: commits 100k..100k+50 s); four backups b1..b4 at
/// segments 10, 30, 50, 70 stopping at 1000, 3000, 5000, 7000 s. "now" is 10050 s.
func fourBackups() -> FakeCatalog {
    let c = FakeCatalog()
    for k: XLogSegNo in 1...100 { add(c, 1, k, first: Double(k) * 100, last: Double(k) * 100 + 50) }
    c.backups = [backup("b1", tl: 1, startSeg: 10, stopSeg: 11, stop: 1000.5), backup("b2", tl: 1, startSeg: 30, stopSeg: 31, stop: 3000.5),
                 backup("b3", tl: 1, startSeg: 50, stopSeg: 51, stop: 5000.5), backup("b4", tl: 1, startSeg: 70, stopSeg: 71, stop: 7000.5)]
    return c
}

func retain(_ c: FakeCatalog, window: Double? = nil, full: Int? = nil, archiveFull: Int? = nil, pinned: Set<String> = [],
            holds: [RetentionHold] = [], now: Double = 10050) throws -> RetentionPlan {
    try RetentionPlanner.plan(policy: RetentionPolicy(windowSeconds: window.map { Int64($0) }, full: full, archiveFull: archiveFull),
                              now: at(now), pinned: pinned, holds: holds, catalog: c)
}

func removed(_ p: RetentionPlan) -> [[UInt64]] { p.walRemoved.map { [UInt64($0.timeline), $0.firstSegno, $0.lastSegno, UInt64($0.segments)] } }
func action(_ p: RetentionPlan, _ label: String) -> String? { p.backups.first { $0.label == label }?.action }

@Suite struct RetentionPlanning {
    @Test func aWindowKeepsTheNewestBackupBeforeItsStartAndEverythingAfter() throws {
        // Window start 10050 - 6000 = 4050 s: between b2 (3000) and b3 (5000).
        let p = try retain(fourBackups(), window: 6000)
        #expect(action(p, "b1") == "remove" && action(p, "b2") == "keep" && action(p, "b3") == "keep" && action(p, "b4") == "keep")
        #expect(p.backups.first { $0.label == "b1" }!.rule.hasPrefix("retention-window: stopped before b2"))
        #expect(p.backups.first { $0.label == "b2" }!.rule.contains("newest backup that stopped at or before the window's start"))
        #expect(removed(p) == [[1, 1, 29, 29]])
        #expect(p.walRemoved[0].storedBytes == 29_000_000)
        #expect(p.bytesFreed == 29_000_000 + 4_000_000)
        #expect(p.recoverableFromBackup == "b2" && p.recoverableFrom == at(3000.5))
        #expect(p.windowStart == at(4050))
    }

    @Test func aBackupStoppingExactlyAtTheWindowStartIsTheAnchor() throws {
        let p = try retain(fourBackups(), window: 10050 - 3000.5)
        #expect(action(p, "b1") == "remove" && action(p, "b2") == "keep")
    }

    @Test func noBackupBeforeTheWindowKeepsThemAll() throws {
        let p = try retain(fourBackups(), window: 100_000)
        #expect(p.removedBackups.isEmpty)
        // WAL before the earliest backup's start serves no backup: it goes.
        #expect(removed(p) == [[1, 1, 9, 9]])
        #expect(p.backups.allSatisfy { $0.rule.hasPrefix("retention-window") })
    }

    @Test func retentionFullWithFewerArchiveFullKeepsOnlyConsistencyWAL() throws {
        let p = try retain(fourBackups(), full: 2, archiveFull: 1)
        #expect(p.removedBackups == ["b1", "b2"])
        let b3 = try #require(p.backups.first { $0.label == "b3" })
        #expect(b3.action == "keep" && !b3.pitr && b3.rule.hasPrefix("retention-full"))
        #expect(p.backups.first { $0.label == "b4" }!.pitr)
        // b3 keeps 50...51 only; b4 keeps 70 onward.
        #expect(removed(p) == [[1, 1, 49, 49], [1, 52, 69, 18]])
    }

    @Test func bothRulesKeepWhatEitherKeeps() throws {
        let p = try retain(fourBackups(), window: 6000, full: 4)
        #expect(p.removedBackups.isEmpty)
        #expect(removed(p) == [[1, 1, 9, 9]])
        let q = try retain(fourBackups(), window: 100, full: 1)
        #expect(q.removedBackups == ["b1", "b2", "b3"])
        #expect(q.backups.first { $0.label == "b1" }!.rule == "retention-window: stopped before b4, which already covers the window's start \(at(9950).iso8601); retention-full: not one of the newest 1")
    }

    @Test func aPinnedBackupKeepsItsConsistencyWAL() throws {
        let p = try retain(fourBackups(), window: 6000, pinned: ["b1"])
        let b1 = try #require(p.backups.first { $0.label == "b1" })
        #expect(b1.action == "keep" && b1.rule == "pinned" && !b1.pitr)
        #expect(removed(p) == [[1, 1, 9, 9], [1, 12, 29, 18]])
    }

    @Test func holdsAndRunningBackupsKeepTheirWAL() throws {
        let c = fourBackups()
        let held = try retain(c, window: 1000, holds: [RetentionHold(owner: "recover on db2", timeline: 1, from: start(20), label: "b1")])
        #expect(action(held, "b1") == "keep" && action(held, "b2") == "remove" && action(held, "b3") == "remove")
        #expect(removed(held) == [[1, 1, 9, 9]])
        var running = backup("b5", tl: 1, startSeg: 40, stopSeg: 40, stop: 9000)
        running.status = .running
        c.backups.append(running)
        let p = try retain(c, window: 1000)
        #expect(removed(p) == [[1, 1, 39, 39]])
    }

    @Test func withoutAnyCompleteBackupNoWALIsRemoved() throws {
        let c = fourBackups()
        c.backups = []
        let p = try retain(c, window: 60)
        #expect(p.isEmpty && p.note != nil)
    }

    @Test func anEmptyPolicyIsEmpty() {
        #expect(RetentionPolicy().isEmpty)
        #expect(RetentionPolicy(archiveFull: 2).isEmpty)
        #expect(!RetentionPolicy(windowSeconds: 60).isEmpty)
    }

    @Test func forksKeepWhatReachingBothTimelinesNeeds() throws {
        // archive(): TL1 1...100, TL2 forks inside segment 60 (60...80); b1 (3), b2 (10) on TL1, b3 on TL2 (65, stop 6510).
        let c = archive()
        c.files = [RetentionFile(name: "00000002.history", storedSize: 100),
                   RetentionFile(name: name(1, 60) + ".partial", storedSize: 10),
                   RetentionFile(name: name(1, 3) + ".00000028.backup", storedSize: 1),
                   RetentionFile(name: name(1, 10) + ".00000028.backup", storedSize: 1)]
        // Window start 7000 - 4000 = 3000 s: anchor b2 (stop 1000).
        let p = try retain(c, window: 4000, now: 7000)
        #expect(p.removedBackups == ["b1"])
        #expect(removed(p) == [[1, 1, 9, 9]])
        #expect(p.filesRemoved == [name(1, 3) + ".00000028.backup"])
        // Window anchored at b3 on timeline 2: timeline 1's WAL is unreachable from any kept backup.
        let q = try retain(c, window: 100, now: 7000)
        #expect(q.removedBackups == ["b1", "b2"])
        #expect(removed(q) == [[1, 1, 100, 100], [2, 60, 64, 5]])
        #expect(q.filesRemoved == [name(1, 10) + ".00000028.backup", name(1, 3) + ".00000028.backup", name(1, 60) + ".partial"].sorted())
        #expect(!q.filesRemoved.contains("00000002.history"))
    }
}
