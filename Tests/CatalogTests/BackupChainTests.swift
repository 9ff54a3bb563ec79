@testable import Catalog
import Foundation
import Testing
import WALFormat

private func incremental(_ label: String, on parent: String, tl: TimeLineID = 1, startSeg: XLogSegNo, stop: Int64) -> BackupRecord {
    var b = backup(label, tl: tl, startSeg: startSeg, stopSeg: startSeg, stop: stop)
    b.type = .incremental; b.parent = parent
    return b
}

@Suite struct BackupChains {
    let sid = standardBackups[0].systemIdentifier
    let pg = standardBackups[0].pgVersion

    @Test func oldRecordsDecodeAsFullAndParentIsAlwaysEncoded() throws {
        var json = String(decoding: try standardBackups[0].encoded(), as: UTF8.self)
        #expect(json.contains("\"type\":\"full\"") && json.contains("\"parent\":null"))
        // A record written before incremental backups: no type, no parent.
        json = json.replacingOccurrences(of: ",\"parent\":null", with: "").replacingOccurrences(of: ",\"type\":\"full\"", with: "")
            .replacingOccurrences(of: "\"parent\":null,", with: "").replacingOccurrences(of: "\"type\":\"full\",", with: "")
        #expect(!json.contains("type") && !json.contains("parent"))
        let old = try BackupRecord.decode(Array(json.utf8), key: "k")
        #expect(old.type == .full && old.parent == nil && old == standardBackups[0])
        let inc = incremental("i1", on: "b1", startSeg: 3, stop: 300)
        #expect(try BackupRecord.decode(try inc.encoded(), key: "k") == inc)
        // An incremental without its parent is refused, not read as a full backup.
        let broken = String(decoding: try inc.encoded(), as: UTF8.self).replacingOccurrences(of: "\"parent\":\"b1\"", with: "\"parent\":null")
        #expect(throws: CatalogError.self) { try BackupRecord.decode(Array(broken.utf8), key: "k") }
    }

    @Test func theChainRunsFromTheFullBackupToTheLabel() throws {
        let all = [standardBackups[0], incremental("i1", on: "b1", startSeg: 3, stop: 300), incremental("i2", on: "i1", startSeg: 4, stop: 400)]
        #expect(try BackupChain.chain(of: all[2], in: all).map(\.label) == ["b1", "i1", "i2"])
        #expect(try BackupChain.chain(of: all[0], in: all).map(\.label) == ["b1"])
        #expect(BackupChain.dependents(of: "b1", in: all).map(\.label).sorted() == ["i1", "i2"])
        #expect(BackupChain.root(of: all[2], in: all)?.label == "b1")
        #expect(throws: BackupChain.Problem.missingParent(label: "i1", parent: "b1")) { try BackupChain.chain(of: all[2], in: Array(all.dropFirst())) }
        var loop = all
        loop[0] = incremental("b1", on: "i2", startSeg: 2, stop: 260)
        #expect(throws: BackupChain.Problem.cycle(label: "i2")) { try BackupChain.chain(of: loop[2], in: loop) }
    }

    @Test func theParentIsTheNewestCompleteBackupOfTheSameSystemVersionAndHistory() throws {
        var other = backup("other-system", tl: 1, startSeg: 20, stopSeg: 20, stop: 2000)
        other.systemIdentifier = "1"
        var newer = backup("pg16", tl: 1, startSeg: 21, stopSeg: 21, stop: 2100)
        newer.pgVersion = pg + 1
        let all = standardBackups + [other, newer]
        // Timeline 1: b3 (b4 is on timeline 2, "bad" failed, the others are another system/version).
        #expect(BackupChain.parent(among: all, systemIdentifier: sid, pgVersion: pg, timeline: 1, history: nil)?.label == "b3")
        // Timeline 2 forked from 1 at segment 12: b1 and b2 lie on its history, b3 (segment 16) does not.
        let h2 = TimelineHistory(timeline: 2, entries: [TimelineHistoryEntry(timeline: 1, switchPoint: LSN.start(of: 12, size: seg16), reason: "")])
        #expect(BackupChain.parent(among: all, systemIdentifier: sid, pgVersion: pg, timeline: 2, history: h2)?.label == "b4")
        #expect(BackupChain.parent(among: Array(all.prefix(3)), systemIdentifier: sid, pgVersion: pg, timeline: 2, history: h2)?.label == "b2")
        // Nothing to build on.
        #expect(BackupChain.parent(among: all, systemIdentifier: "2", pgVersion: pg, timeline: 1, history: nil) == nil)
        // A newest backup whose own chain is broken is skipped.
        let orphan = incremental("orphan", on: "gone", startSeg: 30, stop: 3000)
        #expect(BackupChain.parent(among: all + [orphan], systemIdentifier: sid, pgVersion: pg, timeline: 1, history: nil)?.label == "b3")
    }

    @Test func aVersion4CatalogGainsTypeAndParentAndIsRebuiltBeforeUse() throws {
        let d = tempDir()
        do {
            let old = try standardCatalog(d)
            try old.markComplete()
            try old.conn.exec("""
                DROP INDEX backup_parent;
                ALTER TABLE backup DROP COLUMN type; ALTER TABLE backup DROP COLUMN parent;
                PRAGMA user_version=4
                """)
        }
        let c = try Catalog(path: d + "/catalog.db", repositoryURL: "file://" + d + "/repo", segmentSize: seg16)
        #expect(try c.conn.scalar("PRAGMA user_version") == 5)
        #expect(try c.isComplete() == false)
        let inc = incremental("i1", on: "b3", startSeg: 17, stop: 1700)
        try c.recordBackup(inc)
        #expect(try c.backup(label: "i1") == inc)
        #expect(try c.conn.scalar("SELECT count(*) FROM backup WHERE type='incremental' AND parent='b3'") == 1)
        #expect(try c.conn.scalar("SELECT count(*) FROM backup WHERE type='full'") == Int64(standardBackups.count))
    }
}
