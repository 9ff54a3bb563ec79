import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

func skip(_ tl: TimeLineID, _ segno: XLogSegNo, reason: String = "archive backlog exceeds archive-push-queue-max", at t: Int64 = 600) -> SkipRecord {
    SkipRecord(name: segName(tl, segno), reason: reason, skippedAt: at(t), size: Int64(seg16.bytes), markerStored: true)
}

/// The safety valve's gaps (issue 8): recorded when the valve skips, gone once the segment is
/// archived after all, restored by a rebuild from the repository's markers, compared by check.
@Suite struct SkippedSegmentTests {
    @Test func recordedUntilTheSegmentIsArchivedAfterAll() throws {
        let c = try standardCatalog(tempDir())
        #expect(try c.skippedSegments().isEmpty)
        #expect(try c.recordSkipped(skip(1, 5)))
        #expect(try c.recordSkipped(skip(1, 6, reason: "waited 70 s", at: 650)))
        // An archived segment is never a gap, and a history file is not a segment.
        #expect(try c.recordSkipped(skip(1, 4)) == false)
        #expect(try c.recordSkipped(SkipRecord(name: "00000002.history", reason: "r", skippedAt: at(1), size: 40, markerStored: true)) == false)
        let rows = try c.skippedSegments()
        #expect(rows.map(\.name) == [segName(1, 5), segName(1, 6)])
        #expect(rows[1] == SkippedSegment(name: segName(1, 6), timeline: 1, segno: 6, reason: "waited 70 s", skippedAt: at(650), size: Int64(seg16.bytes)))
        #expect(try c.info(now: at(10_700)).skippedSegments == rows)
        // Idempotent.
        try c.recordSkipped(skip(1, 5))
        #expect(try c.skippedSegments().count == 2)
        // Archived after all (a hung push that completed): the segment row wins.
        try c.recordArchived(segmentMeta(1, 5, first: 500, last: 550))
        #expect(try c.skippedSegments().map(\.name) == [segName(1, 6)])
        try c.removeSkipped(name: segName(1, 6))
        #expect(try c.skippedSegments().isEmpty)
        // A name that does not fit 16 MiB segments is refused.
        #expect(throws: CatalogError.self) {
            _ = try c.recordSkipped(SkipRecord(name: "000000010000000100000100", reason: "r", skippedAt: at(1), size: 1, markerStored: true))
        }
    }

    @Test func skippedAlongAPathBelongToTheOwningTimeline() throws {
        let c = try standardCatalog(tempDir())
        try c.recordSkipped(skip(1, 5))
        try c.recordSkipped(skip(2, 12))
        #expect(try c.recordSkipped(skip(1, 25)))   // timeline 1 after the fork: not on timeline 2's path
        #expect(try c.skippedSegments(from: 0, to: 30, on: c.path(to: 2)).map(\.name) == [segName(1, 5), segName(2, 12)])
        #expect(try c.skippedSegments(from: 6, to: 30, on: c.path(to: 2)).map(\.name) == [segName(2, 12)])
        #expect(try c.skippedSegments(from: 0, to: 30, on: c.path(to: 1)).map(\.name) == [segName(1, 5), segName(1, 25)])
        #expect(try c.skippedSegments(timeline: 2, from: 13, to: 20).isEmpty)
    }

    @Test func rebuildRestoresSkipsFromTheMarkersAlone() throws {
        let d = tempDir()
        let repo = try populateRepository(d)
        func mark(_ r: SkipRecord) throws {
            try repo.store.put(key: RepositoryLayout.skipMarkerKey(try #require(WALFileName(r.name))), bytes: Array(try JSONEncoder().encode(r)))
        }
        try mark(skip(1, 5, reason: "backlog"))
        try mark(skip(1, 4))                       // archived after all (its meta exists): no gap
        try mark(skip(2, 12, reason: "age", at: 6200))
        try repo.store.put(key: "wal/0000000100000000/" + segName(1, 6) + ".skipped", bytes: Array("{".utf8))
        let c = try Catalog(path: d + "/c.db", repositoryURL: repo.url, segmentSize: seg16)
        let report = try c.rebuild(from: repo, loadHistory: { histories[$0] })
        #expect(report.skippedSegments == 2)
        #expect(report.segments == 26)
        #expect(report.unreadable.count == 1 && report.unreadable[0].contains(segName(1, 6) + ".skipped"))
        let rows = try c.skippedSegments()
        #expect(rows.map(\.name) == [segName(1, 5), segName(2, 12)])
        #expect(rows[0].reason == "backlog" && rows[1].skippedAt == at(6200))
        try repo.store.delete(key: "wal/0000000100000000/" + segName(1, 6) + ".skipped")
        #expect(try c.check(against: repo).isClean)
        // Drift both ways: a skip only the catalog knows (marker not stored yet), a marker it lacks.
        try c.recordSkipped(skip(1, 6))
        try mark(skip(1, 30))
        let drift = try c.check(against: repo)
        #expect(drift.skippedMissingFromRepository == [segName(1, 6)])
        #expect(drift.skippedMissingFromCatalog == [segName(1, 30)])
        #expect(drift.missingFromCatalog.isEmpty && drift.metaWithoutObject.isEmpty)
        #expect(!drift.isClean)
    }

    @Test func aVersion1CatalogUpgradesAndIsRebuiltBeforeUse() throws {
        let d = tempDir()
        do {
            // A catalog as walctl with schema version 1 left it: complete, no skipped_segment table.
            let old = try standardCatalog(d)
            try old.markComplete()
            try old.conn.exec("DROP TABLE skipped_segment; PRAGMA user_version=1")
        }
        let c = try Catalog(path: d + "/catalog.db", repositoryURL: "file://" + d + "/repo", segmentSize: seg16)
        #expect(try c.conn.scalar("PRAGMA user_version") == Int64(Catalog.schemaVersion))
        #expect(Catalog.schemaVersion == 5)
        // Incomplete: the old walctl never recorded the repository's skip markers, so readers rebuild.
        #expect(try c.isComplete() == false)
        #expect(try c.counts().segments == 26)
        #expect(try c.recordSkipped(skip(1, 5)))
        // Opening it again does not mark it incomplete again.
        try c.markComplete()
        #expect(try Catalog(path: d + "/catalog.db", repositoryURL: "file://" + d + "/repo", segmentSize: seg16).isComplete())
    }
}
