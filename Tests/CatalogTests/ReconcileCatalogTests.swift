import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

/// Schema 3 (issue 12): damaged WAL recorded from the metas, when the catalog was last reconciled,
/// and removing a row whose objects are gone.
@Suite struct ReconcileCatalogTests {
    func open(_ d: String) throws -> Catalog {
        try Catalog(path: d + "/catalog.db", repositoryURL: "file://" + d + "/repo", segmentSize: seg16)
    }

    func damagedMeta(_ segno: XLogSegNo) -> ArchivedFileMeta {
        var m = segmentMeta(1, segno, first: Int64(segno) * 100, last: Int64(segno) * 100 + 50)
        m.summary?.crcFailures = 1
        m.summary?.crcFailureLSNs = [LSN.start(of: segno, size: seg16) + 0x400]
        return m
    }

    @Test func damageIsRecordedFromTheSummaryAndFoundByRange() throws {
        let d = tempDir()
        let c = try open(d)
        try c.recordArchived((1...5).map { $0 == 3 ? damagedMeta($0) : segmentMeta(1, $0, first: Int64($0) * 100, last: Int64($0) * 100 + 50) })
        var tail = segmentMeta(1, 6, first: 600, last: 650)
        tail.summary?.endOfWAL = LSN.start(of: 6, size: seg16) + 0x2000
        tail.summary?.endOfWALReason = "zeroed page"
        try c.recordArchived(tail)
        var partial = segmentMeta(1, 7, first: 700, last: 750, partial: true)
        partial.summary?.endOfWAL = LSN.start(of: 7, size: seg16) + 0x2000   // normal for a .partial
        try c.recordArchived(partial)
        let damaged = try c.damagedSegments(timeline: 1)
        #expect(damaged.map(\.segno) == [3, 6])
        #expect(damaged[0].lsn == LSN.start(of: 3, size: seg16) + 0x400)
        #expect(damaged[1].reason.contains("zeroed page"))
        #expect(try c.damagedSegments(timeline: 1, from: 4, to: 5).isEmpty)
        #expect(try c.segment(timeline: 1, segno: 7, partial: true)?.damagedLSN == nil)
        // A re-push of an intact copy clears it.
        try c.recordArchived(segmentMeta(1, 3, first: 300, last: 350))
        #expect(try c.damagedSegments(timeline: 1).map(\.segno) == [6])
    }

    @Test func aVersion2CatalogGainsTheColumnsAndIsRebuiltBeforeUse() throws {
        let d = tempDir()
        do {
            let old = try open(d)
            try old.recordArchived((1...3).map { segmentMeta(1, $0, first: Int64($0) * 100, last: Int64($0) * 100 + 50) })
            try old.markComplete()
            try old.conn.exec("""
                DROP INDEX segment_damaged;
                ALTER TABLE segment DROP COLUMN damaged_lsn; ALTER TABLE segment DROP COLUMN damage;
                ALTER TABLE partial_segment DROP COLUMN damaged_lsn; ALTER TABLE partial_segment DROP COLUMN damage;
                ALTER TABLE repository DROP COLUMN checked_at;
                PRAGMA user_version=2
                """)
        }
        let c = try open(d)
        #expect(try c.conn.scalar("PRAGMA user_version") == Int64(Catalog.schemaVersion))
        #expect(try c.isComplete() == false)   // readers rebuild: the metas restore the damage columns
        #expect(try c.checkedAt() == nil)
        #expect(try c.segment(timeline: 1, segno: 2)?.damagedLSN == nil)
        try c.recordArchived(damagedMeta(4))
        #expect(try c.damagedSegments(timeline: 1).map(\.segno) == [4])
        try c.markComplete(at: at(10))
        #expect(try c.checkedAt() == at(10))
        try c.markChecked(at: at(20))
        #expect(try open(d).checkedAt() == at(20))
    }

    @Test func removingASegmentLeavesAnOrdinaryGap() throws {
        let d = tempDir()
        let c = try open(d)
        try c.recordArchived((1...6).map {
            segmentMeta(1, $0, first: Int64($0) * 100, last: $0 == 3 ? 5000 : Int64($0) * 100 + 50, restorePoints: $0 == 3 ? [("rp", 320)] : [])
        })
        #expect(try c.firstSegment(reaching: at(1000), on: [(1, LSN(0), nil)])?.segno == 3)
        try c.removeSegment(timeline: 1, segno: 3)
        #expect(try c.segment(timeline: 1, segno: 3) == nil)
        #expect(try c.archivedRanges(timeline: 1).map { $0.firstSegno...$0.lastSegno } == [1...2, 4...6])
        #expect(try c.gaps(from: 1, to: 6, on: [(1, LSN(0), nil)]).map(\.firstSegno) == [3])
        #expect(try c.counts().segments == 5)
        #expect(try c.restorePoints(named: "rp").isEmpty)
        // The reach of the later rows no longer carries the removed segment's late commit.
        #expect(try c.firstSegment(reaching: at(1000), on: [(1, LSN(0), nil)]) == nil)
        #expect(try c.firstSegment(reaching: at(500), on: [(1, LSN(0), nil)])?.segno == 5)
        // Re-archiving it merges the runs again.
        try c.recordArchived(segmentMeta(1, 3, first: 300, last: 350))
        #expect(try c.archivedRanges(timeline: 1).map { $0.firstSegno...$0.lastSegno } == [1...6])
        #expect(try c.counts().segments == 6)
        // Removing the ends of a run.
        try c.removeSegment(timeline: 1, segno: 1)
        try c.removeSegment(timeline: 1, segno: 6)
        #expect(try c.archivedRanges(timeline: 1).map { $0.firstSegno...$0.lastSegno } == [2...5])
        try c.removeSegment(timeline: 1, segno: 99)   // not there: nothing happens
        #expect(try c.counts().segments == 4)
    }
}
