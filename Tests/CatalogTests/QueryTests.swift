import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

@Suite struct QueryTests {
    @Test func segmentByNameAndLSN() throws {
        let c = try standardCatalog(tempDir())
        let s = try #require(try c.segment(named: segName(1, 3)))
        #expect(s.timeline == 1 && s.segno == 3 && !s.partial && s.codec == "zstd")
        #expect(s.firstXactTime == at(300) && s.lastXactTime == at(350) && s.commits == 10 && s.restorePoints == 1)
        #expect(s.crc32c == UInt32(truncatingIfNeeded: UInt64(3) &* 2654435761))
        #expect(try c.segment(named: segName(1, 5)) == nil)
        #expect(try c.segment(named: "nonsense") == nil)
        let p = try #require(try c.segment(named: segName(1, 10) + ".partial"))
        #expect(p.partial && p.name == segName(1, 10) + ".partial")
        let byLSN = try #require(try c.segment(containing: LSN.start(of: 11, size: seg16) + 12345, timeline: 2))
        #expect(byLSN.name == segName(2, 11))
        #expect(try c.segment(containing: LSN.start(of: 12, size: seg16), timeline: 2) == nil)
    }

    @Test(arguments: [false, true]) func timeToSegmentAcrossForks(shuffled: Bool) throws {
        let c = try standardCatalog(tempDir(), shuffled: shuffled)
        let to2 = try c.path(to: 2), to3 = try c.path(to: 3), to1 = try c.path(to: 1)
        #expect(to2.count == 2 && to2[1].begin == switch12)
        func first(_ t: Int64, _ p: TimelinePath, inclusive: Bool = true) throws -> String? {
            try c.firstSegment(reaching: at(t), on: p, inclusive: inclusive)?.name
        }
        #expect(try first(0, to2) == segName(1, 1))
        #expect(try first(150, to2) == segName(1, 2))                     // needs xact > 150
        #expect(try first(150, to2, inclusive: false) == segName(1, 1))   // needs xact >= 150
        #expect(try first(790, to2) == segName(1, 7))                     // 7 ends at 850, 8 at 795
        #expect(try first(851, to2) == segName(1, 9))
        #expect(try first(960, to2) == segName(2, 10))                    // tl1's 10 is not on the path
        #expect(try first(960, to1) == segName(1, 10))
        #expect(try first(6160, to2) == segName(2, 13))                   // 12 is missing
        #expect(try first(99_999, to2) == nil)
        #expect(try first(1340, to3) == segName(1, 13))
        #expect(try first(1360, to3) == segName(3, 14))
        #expect(try first(1360, to1) == segName(1, 14))
        // A path element starting after segments that already passed T: the range is scanned.
        #expect(try first(0, [(timeline: 2, begin: LSN.start(of: 11, size: seg16), end: nil)]) == segName(2, 11))
    }

    @Test func gapsAlongPaths() throws {
        let c = try standardCatalog(tempDir())
        let g2 = try c.gaps(from: 1, to: 15, on: c.path(to: 2))
        #expect(g2.map { [$0.timeline, UInt32($0.firstSegno), UInt32($0.lastSegno)] } == [[1, 5, 6], [2, 12, 12]])
        #expect(g2[0].firstName == segName(1, 5) && g2[0].count == 2)
        let g3 = try c.gaps(from: 1, to: 17, on: c.path(to: 3))
        #expect(g3.map { [$0.timeline, UInt32($0.firstSegno), UInt32($0.lastSegno)] } == [[1, 5, 6], [3, 17, 17]])
        #expect(try c.gaps(from: 7, to: 11, on: c.path(to: 2)).isEmpty)
        #expect(try c.gaps(from: 0, to: 0, on: c.path(to: 1)).map(\.firstSegno) == [0])
        #expect(try c.gaps(fromLSN: LSN.start(of: 13, size: seg16), toLSN: LSN.start(of: 14, size: seg16) + 5, on: c.path(to: 2)).isEmpty)
        #expect(try c.archivedRanges(timeline: 1).map { [$0.firstSegno, $0.lastSegno] } == [[1, 4], [7, 20]])
    }

    @Test func newestBackupOnPath() throws {
        let c = try standardCatalog(tempDir())
        let to2 = try c.path(to: 2)
        #expect(try c.newestBackup(stoppedAtOrBefore: at(6400), on: to2)?.label == "b4")
        #expect(try c.newestBackup(stoppedAtOrBefore: at(6300), on: to2)?.label == "b2")   // b3 is past the fork
        #expect(try c.newestBackup(stoppedAtOrBefore: at(760), on: to2)?.label == "b2")    // at or before
        #expect(try c.newestBackup(stoppedAtOrBefore: at(500), on: to2)?.label == "b1")    // "bad" failed
        #expect(try c.newestBackup(stoppedAtOrBefore: at(100), on: to2) == nil)
        #expect(try c.newestBackup(stoppedAtOrBefore: at(2000), on: c.path(to: 1))?.label == "b3")
        #expect(try c.newestBackup(stoppedAtOrBefore: at(2000), on: c.path(to: 3))?.label == "b2")
        #expect(try c.backup(label: "b4") == standardBackups[3])
        #expect(try c.backups().map(\.label) == ["b1", "bad", "b2", "b3", "b4"])
    }

    @Test func recoverableWindows() throws {
        let c = try standardCatalog(tempDir())
        let w = try c.recoverableWindows()
        #expect(w.map(\.timeline) == [1, 2, 3])
        #expect(w[0].backupLabel == "b1" && w[0].from == at(260) && w[0].to == at(450) && w[0].latestArchivedXactTime == at(2050))
        #expect(w[0].gaps.map(\.firstSegno) == [5])
        #expect(w[1].to == at(450) && w[1].latestArchivedXactTime == at(6550) && w[1].gaps.map(\.firstSegno) == [5, 12])
        #expect(w[2].latestArchivedXactTime == at(10650))
        // Fill the gaps: the windows reach the end.
        try c.recordArchived(segmentMeta(1, 5, first: 500, last: 550))
        try c.recordArchived(segmentMeta(1, 6, first: 600, last: 650))
        try c.recordArchived(segmentMeta(2, 12, first: 6200, last: 6250))
        let w2 = try c.recoverableWindows()
        #expect(w2[0].to == at(2050) && w2[0].gaps.isEmpty)
        #expect(w2[1].to == at(6550) && w2[2].to == at(10650))
        // No backup: no window start.
        let d = tempDir()
        let empty = try Catalog(path: d + "/c.db", repositoryURL: "r", segmentSize: seg16)
        try empty.recordArchived(segmentMeta(1, 1, first: 1, last: 2))
        #expect(try empty.recoverableWindow(timeline: 1)?.from == nil)
    }

    @Test func restorePointsAndLastSegmentAndCounts() throws {
        let c = try standardCatalog(tempDir())
        let rps = try c.restorePoints(named: "before-migration")
        #expect(rps.map(\.timeline) == [1, 2])
        #expect(rps[0].segmentName == segName(1, 3) && rps[0].time == at(320) && rps[0].lsn == LSN.start(of: 3, size: seg16) + 2000)
        #expect(try c.restorePoints(named: "nope").isEmpty)
        let last = try #require(try c.lastArchivedSegment())
        #expect(last.name == segName(3, 16) && last.archivedAt == at(10651))
        let n = try c.counts()
        #expect(n.segments == 26 && n.partialSegments == 1 && n.historyFiles == 2 && n.backupHistoryFiles == 1)
        #expect(n.backups == 5 && n.restorePoints == 2 && n.timelines == 3)
        #expect(n.walBytes == 26 * Int64(seg16.bytes))
    }

    @Test func recordingIsIdempotentAndUpdates() throws {
        let c = try standardCatalog(tempDir())
        let before = try c.counts()
        for m in standardMetas() { try c.recordArchived(m) }
        #expect(try c.counts() == before)
        #expect(try c.archivedRanges(timeline: 1).count == 2)
        // Re-recording with a different summary replaces it and fixes the reach chain.
        try c.recordArchived(segmentMeta(1, 7, first: 700, last: 750))
        #expect(try c.firstSegment(reaching: at(790), on: c.path(to: 1))?.name == segName(1, 8))
        #expect(try c.counts() == before)
        // Restore points of a re-recorded segment are replaced, not duplicated.
        try c.recordArchived(segmentMeta(1, 3, first: 300, last: 350, restorePoints: [("before-migration", 320)]))
        #expect(try c.restorePoints(named: "before-migration").count == 2)
        // Invalid input is refused with a typed error.
        #expect(throws: CatalogError.self) { try c.recordArchived(fileMeta("not-a-wal-file")) }
    }

    @Test func openingChecksRepositoryAndSchema() throws {
        let d = tempDir()
        // A missing directory is refused, never created (its owner matters), and the fix is named.
        do {
            _ = try Catalog(path: d + "/sub/dir/c.db", repositoryURL: "s3://b/p", segmentSize: seg16)
            Issue.record("a catalog in a missing directory was opened")
        } catch {
            #expect("\(error)".contains("install -d -o "))
            #expect("\(error)".contains(d + "/sub/dir"))
        }
        #expect(!FileManager.default.fileExists(atPath: d + "/sub"))
        try FileManager.default.createDirectory(atPath: d + "/sub/dir", withIntermediateDirectories: true)
        _ = try Catalog(path: d + "/sub/dir/c.db", repositoryURL: "s3://b/p", segmentSize: seg16, systemIdentifier: "42")
        let again = try Catalog(path: d + "/sub/dir/c.db", repositoryURL: "s3://b/p", segmentSize: seg16)
        // The file and SQLite's -wal/-shm beside it are private to the user.
        for f in ["c.db", "c.db-wal", "c.db-shm"] {
            let mode = (try FileManager.default.attributesOfItem(atPath: d + "/sub/dir/" + f)[.posixPermissions] as? Int) ?? -1
            #expect(mode == 0o600, "\(f) has mode \(String(mode, radix: 8))")
        }
        #expect(try again.isComplete() == false)
        try again.markComplete()
        #expect(try again.isComplete())
        #expect(throws: CatalogError.self) {
            _ = try Catalog(path: d + "/sub/dir/c.db", repositoryURL: "s3://b/p", segmentSize: WALSegmentSize(bytes: 64 << 20)!)
        }
        #expect(throws: CatalogError.self) {
            _ = try Catalog(path: d + "/sub/dir/c.db", repositoryURL: "s3://b/p", segmentSize: seg16, systemIdentifier: "43")
        }
        // A second repository in the same file is independent.
        let other = try Catalog(path: d + "/sub/dir/c.db", repositoryURL: "file:///other", segmentSize: seg16)
        try other.recordArchived(segmentMeta(1, 1, first: 1, last: 2))
        #expect(try again.segment(named: segName(1, 1)) == nil)
        #expect(try other.integrityCheck() == "ok")
        // Not a database.
        _ = FileManager.default.createFile(atPath: d + "/junk.db", contents: Data(repeating: 7, count: 4096))
        #expect(throws: CatalogError.self) { _ = try Catalog(path: d + "/junk.db", repositoryURL: "r", segmentSize: seg16) }
        #expect(Catalog.defaultPath(environment: [:]) == "/var/lib/walctl/catalog.db")
        #expect(Catalog.defaultPath(environment: ["WALCTL_CATALOG": "/x.db"], setting: "/y.db") == "/x.db")
        #expect(Catalog.defaultPath(environment: [:], setting: "/y.db") == "/y.db")
    }

    @Test func infoJSON() throws {
        let c = try standardCatalog(tempDir())
        let info = try c.info(now: at(10_700))
        #expect(info.timelines.map(\.timeline) == [1, 2, 3])
        #expect(info.timelines[1].parent == 1 && info.timelines[1].switchPoint == switch12)
        #expect(info.timelines[0].gaps.map { [$0.firstSegno, $0.lastSegno] } == [[5, 6]])
        #expect(info.lastArchived?.ageSeconds == 49)
        #expect(info.counts.segments == 26 && info.backups.count == 5 && info.recoverableWindows.count == 3)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = String(decoding: try enc.encode(info), as: UTF8.self)
        for key in ["\"formatVersion\"", "\"recoverableWindows\"", "\"lastArchived\"", "\"ageSeconds\"", "\"gaps\"", "\"catalogComplete\"",
                    "\"segmentCount\"", "\"backupCount\""] {
            #expect(json.contains(key))
        }
        let back = try JSONDecoder().decode(CatalogInfo.self, from: Data(json.utf8))
        #expect(back == info)
    }
}
