import Catalog
import Planner
import Testing
import WALFormat

/// fourBackups with b2 and b4 made incrementals: chains b1 <- b2 and b3 <- b4.
func twoChains() -> FakeCatalog {
    let c = fourBackups()
    c.backups[1].type = .incremental; c.backups[1].parent = "b1"
    c.backups[3].type = .incremental; c.backups[3].parent = "b3"
    return c
}

@Suite struct RetentionChains {
    @Test func retentionFullCountsChainsNotBackups() throws {
        // Old rule: the newest 1 backup is b4 alone, which cannot be restored without b3.
        let p = try retain(twoChains(), full: 1)
        #expect(p.removedBackups == ["b1", "b2"])
        #expect(action(p, "b3") == "keep" && action(p, "b4") == "keep")
        #expect(p.backups.first { $0.label == "b3" }!.rule == "retention-full: in one of the newest 1 chains")
        let q = try retain(twoChains(), full: 2)
        #expect(q.removedBackups.isEmpty)
    }

    @Test func aFullBackupGoesOnlyWithAllItsIncrementals() throws {
        for window in [100.0, 6000, 10050 - 3000.5] {
            let p = try retain(twoChains(), window: window)
            for (full, inc) in [("b1", "b2"), ("b3", "b4")] where action(p, full) == "remove" {
                #expect(action(p, inc) == "remove", "window \(window): \(full) removed but \(inc) kept")
            }
        }
    }

    @Test func aWindowAnchoredOnAnIncrementalKeepsItsChain() throws {
        // Window start 4050: the anchor is b2 (incremental on b1): b1 stays, as data only.
        let p = try retain(twoChains(), window: 6000)
        #expect(p.removedBackups.isEmpty)
        let b1 = try #require(p.backups.first { $0.label == "b1" })
        #expect(b1.action == "keep" && b1.rule == "chain: b2 is built on it" && !b1.pitr)
        // b1's own WAL beyond its stop is not needed (b2's restore reads b1's files, never its WAL).
        #expect(removed(p) == [[1, 1, 9, 9], [1, 12, 29, 18]])
    }

    @Test func aPinnedIncrementalKeepsItsWholeChain() throws {
        let p = try retain(twoChains(), full: 1, pinned: ["b2"])
        #expect(p.removedBackups.isEmpty)
        #expect(p.backups.first { $0.label == "b1" }!.rule == "chain: b2 is built on it")
        let held = try retain(twoChains(), full: 1, holds: [RetentionHold(owner: "recover", timeline: 1, from: start(30), label: "b2")])
        #expect(held.removedBackups.isEmpty)
    }

    @Test func anIncrementalWhoseParentIsGoneIsRemoved() throws {
        let c = twoChains()
        c.backups.remove(at: 0)   // b1 gone (an expire that stopped half way)
        let p = try retain(c, window: 100_000)
        #expect(p.removedBackups == ["b2"])
        #expect(p.backups.first { $0.label == "b2" }!.rule.contains("its chain is broken"))
        #expect(try retain(c, window: 100_000, pinned: ["b2"]).removedBackups.isEmpty)
    }

    @Test func withoutIncrementalsTheRulesAreUnchanged() throws {
        let p = try retain(fourBackups(), full: 1)
        #expect(p.removedBackups == ["b1", "b2", "b3"])
        #expect(p.backups.first { $0.label == "b4" }!.rule == "retention-full: one of the newest 1")
    }
}
