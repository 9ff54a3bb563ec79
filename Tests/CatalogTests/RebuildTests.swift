import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

/// Writes the standard archive into a FileStore repository: data object + meta per file, backup
/// records under backup/<label>/backup.json.
func populateRepository(_ dir: String) throws -> Repository {
    let store = FileStore(root: dir + "/repo")
    let repo = Repository(store: store, url: store.location)
    for m in standardMetas() {
        let name = try #require(WALFileName(m.name))
        let dataKey = RepositoryLayout.directory(for: name) + "/" + m.name + "." + m.crc32c + ".zst"
        try store.put(key: dataKey, bytes: [1, 2, 3])
        try store.put(key: RepositoryLayout.metaKey(name), bytes: try Repository.encodeMeta(m))
    }
    for b in standardBackups { try store.put(key: BackupRecord.metadataKey(label: b.label), bytes: try b.encoded()) }
    try store.put(key: "backup/b1/base.tar.zst", bytes: [0])
    return repo
}

let histories: [String: TimelineHistory] = ["00000002.history": history2, "00000003.history": history3]

@Suite struct RebuildTests {
    @Test func rebuildGivesTheSameAnswers() throws {
        let d = tempDir()
        let repo = try populateRepository(d)
        let original = try standardCatalog(d)
        try FileManager.default.removeItem(atPath: d + "/catalog.db")
        try? FileManager.default.removeItem(atPath: d + "/catalog.db-wal")
        try? FileManager.default.removeItem(atPath: d + "/catalog.db-shm")
        let rebuilt = try Catalog(path: d + "/catalog.db", repositoryURL: "file://" + d + "/repo", segmentSize: seg16)
        #expect(try rebuilt.isComplete() == false)
        let report = try rebuilt.rebuild(from: repo, parallelism: 4, batchSize: 7, loadHistory: { histories[$0] })
        #expect(report.segments == 26 && report.partialSegments == 1 && report.historyFiles == 2)
        #expect(report.backupHistoryFiles == 1 && report.histories == 2 && report.backups == 5 && report.unreadable.isEmpty)
        #expect(try rebuilt.isComplete())
        // Same answers as the catalog recorded push by push.
        _ = original
        let fresh = try standardCatalog(tempDir())
        #expect(try rebuilt.counts() == fresh.counts())
        for t: Int64 in [0, 150, 790, 851, 960, 1340, 1360, 6160, 99_999] {
            for tl: TimeLineID in [1, 2, 3] {
                #expect(try rebuilt.firstSegment(reaching: at(t), on: rebuilt.path(to: tl)) ==
                        fresh.firstSegment(reaching: at(t), on: fresh.path(to: tl)))
                #expect(try rebuilt.newestBackup(stoppedAtOrBefore: at(t * 5), on: rebuilt.path(to: tl)) ==
                        fresh.newestBackup(stoppedAtOrBefore: at(t * 5), on: fresh.path(to: tl)))
            }
        }
        #expect(try rebuilt.gaps(from: 0, to: 20, on: rebuilt.path(to: 2)) == fresh.gaps(from: 0, to: 20, on: fresh.path(to: 2)))
        #expect(try rebuilt.recoverableWindows() == fresh.recoverableWindows())
        #expect(try rebuilt.restorePoints(named: "before-migration") == fresh.restorePoints(named: "before-migration"))
        #expect(try rebuilt.segment(named: segName(1, 10) + ".partial") == fresh.segment(named: segName(1, 10) + ".partial"))
        var a = try rebuilt.info(now: at(1)), b = try fresh.info(now: at(1))
        a.catalogPath = ""; b.catalogPath = ""; a.repository = ""; b.repository = ""
        #expect(a.catalogComplete && !b.catalogComplete)   // the push-by-push one never saw a rebuild
        b.catalogComplete = true
        #expect(a.catalogCheckedAt != nil && b.catalogCheckedAt == nil)   // a complete rebuild is a reconciliation
        b.catalogCheckedAt = a.catalogCheckedAt
        #expect(a == b)
        #expect(try rebuilt.check(against: repo).isClean)
    }

    @Test func rebuildSkipsUnreadableMetas() throws {
        let d = tempDir()
        let repo = try populateRepository(d)
        try repo.store.put(key: "wal/0000000100000000/000000010000000000000063.meta", bytes: Array("{not json".utf8))
        let c = try Catalog(path: d + "/c.db", repositoryURL: repo.url, segmentSize: seg16)
        let r = try c.rebuild(from: repo)
        #expect(r.unreadable.count == 1 && r.unreadable[0].contains("000000010000000000000063.meta"))
        #expect(r.segments == 26 && r.histories == 0)   // no history loader: files known, tree not
        #expect(try c.history(of: 2) == nil)
    }

    @Test func checkReportsDrift() throws {
        let d = tempDir()
        let repo = try populateRepository(d)
        let c = try Catalog(path: d + "/c.db", repositoryURL: repo.url, segmentSize: seg16)
        try c.rebuild(from: repo, loadHistory: { histories[$0] })
        #expect(try c.check(against: repo).isClean)
        // Archived behind the catalog's back, a meta deleted, a data object lost, a backup record gone.
        let extra = segmentMeta(1, 30, first: 3000, last: 3050)
        try repo.store.put(key: RepositoryLayout.metaKey(.segment(extra.name)), bytes: try Repository.encodeMeta(extra))
        try repo.store.put(key: "wal/0000000100000000/" + extra.name + "." + extra.crc32c + ".zst", bytes: [1])
        try repo.store.delete(key: RepositoryLayout.metaKey(.segment(segName(1, 2))))
        for o in try repo.store.list(prefix: "wal/0000000100000000/" + segName(1, 3) + ".") where !o.key.hasSuffix(".meta") {
            try repo.store.delete(key: o.key)
        }
        try repo.store.delete(key: BackupRecord.metadataKey(label: "b2"))
        try c.recordBackup(backup("b9", tl: 1, startSeg: 1, stopSeg: 1, stop: 10))
        try repo.store.put(key: BackupRecord.metadataKey(label: "b10"), bytes: try backup("b10", tl: 1, startSeg: 1, stopSeg: 1, stop: 11).encoded())
        let drift = try c.check(against: repo)
        #expect(drift.missingFromCatalog == [extra.name])
        #expect(drift.missingFromRepository == [segName(1, 2)])
        #expect(drift.metaWithoutObject == [segName(1, 3)])
        #expect(drift.backupsMissingFromRepository == ["b2", "b9"])
        #expect(drift.backupsMissingFromCatalog == ["b10"])
        #expect(!drift.isClean)
    }
}
