import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

@Suite struct RetentionCatalogTests {
    /// Removing a range through the expiry journal leaves the catalog a fresh build without those
    /// segments would have: runs, counters, reach, restore points.
    @Test func aRemovedRangeEqualsACatalogBuiltWithoutIt() throws {
        let dir = tempDir(), other = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: other) }
        let c = try standardCatalog(dir)
        let path1 = try c.path(to: 1)
        #expect(try c.firstSegment(reaching: at(800), on: path1)?.segno == 7)
        try c.beginExpiry([.wal(timeline: 1, first: 1, last: 3), .wal(timeline: 1, first: 7, last: 7), .file(name: segName(1, 2) + ".00000028.backup"),
                           .backup(label: "b1")])
        let fresh = try Catalog(path: other + "/catalog.db", repositoryURL: "file://" + other + "/repo", segmentSize: seg16)
        for m in standardMetas() where !(m.name == segName(1, 1) || m.name == segName(1, 2) || m.name == segName(1, 3) || m.name == segName(1, 7)
                                         || m.name == segName(1, 2) + ".00000028.backup") {
            try fresh.recordArchived(m)
        }
        try fresh.recordHistory(history2); try fresh.recordHistory(history3)
        #expect(try c.archivedRanges(timeline: 1) == fresh.archivedRanges(timeline: 1))
        #expect(try c.counts().segments == fresh.counts().segments)
        #expect(try c.counts().walStoredBytes == fresh.counts().walStoredBytes)
        #expect(try c.counts().restorePoints == fresh.counts().restorePoints)
        #expect(try c.counts().backupHistoryFiles == 0)
        // Segment 8's reach no longer carries segment 7's late commit.
        #expect(try c.firstSegment(reaching: at(800), on: path1)?.segno == fresh.firstSegment(reaching: at(800), on: path1)?.segno)
        #expect(try c.firstSegment(reaching: at(800), on: path1)?.segno == 9)
        #expect(try c.backup(label: "b1")?.status == .expired)
    }

    @Test func theJournalSurvivesUntilFinishedAndFiltersNames() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try standardCatalog(dir)
        #expect(try c.pendingExpiry().isEmpty)
        let items: [ExpiryItem] = [.wal(timeline: 1, first: 1, last: 4), .file(name: "00000003.history"), .backup(label: "b1")]
        try c.beginExpiry(items)
        // A second process (a verify) opening the same file sees the journal.
        let again = try Catalog(path: dir + "/catalog.db", repositoryURL: "file://" + dir + "/repo", segmentSize: seg16)
        #expect(Set(try again.pendingExpiry()) == Set(items))
        #expect(try again.pendingExpiry().first == .backup(label: "b1"))
        let f = try again.expiryFilter()
        #expect(f.contains(name: segName(1, 3), segmentSize: seg16))
        #expect(!f.contains(name: segName(1, 9), segmentSize: seg16))
        #expect(f.contains(name: "00000003.history", segmentSize: seg16))
        #expect(f.labels == ["b1"])
        try again.finishExpiry(items)
        #expect(try c.pendingExpiry().isEmpty)
        #expect(try c.backup(label: "b1") == nil)
        #expect(try c.backup(label: "b2") != nil)
    }

    @Test func pinsFollowTheMarkerObjects() throws {
        let keys = ["backup/a/backup.json", "backup/a/pinned", "backup/b/backup.json", "backup/c/x/pinned", "backup/pinned"]
        #expect(Catalog.pinnedLabels(in: keys) == ["a"])
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try standardCatalog(dir)
        try c.setPinned(label: "b2", true)
        #expect(try c.backup(label: "b2")?.pinned == true)
        try c.setPinned(label: "b2", false)
        #expect(try c.backup(label: "b2")?.pinned == nil)
    }
}
