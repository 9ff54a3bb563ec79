import Foundation
import Testing
import Storage
import Catalog
import Planner
import TestSupport
import WALFormat
@testable import Commands

/// Issue 12 (cases 3, 4, 5): `verify`, `info` and `recover` prove the catalog against the
/// repository's listings: objects deleted behind the catalog's back, files archived while the
/// catalog could not be written, temporary leftovers, damaged WAL.
@Suite struct ReconcileTests {
    let root: String
    let repository: Repository
    static let sysid: UInt64 = 7_712_321_645_893_095_454

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-reconcile-\(UUID().uuidString)").path
        repository = Repository(store: FileStore(root: root + "/repo"), url: "file://" + root + "/repo")
        try repository.bind(RepositoryInfo(systemIdentifier: Self.sysid, walSegmentSize: WALSegmentSize.default.bytes,
                                           pgVersion: 15, createdAt: PGTimestamp(microseconds: 0)))
        try FileManager.default.createDirectory(atPath: root + "/pg_wal/archive_status", withIntermediateDirectories: true)
    }

    func config(catalog: String? = nil) throws -> Configuration {
        try Configuration.load(flags: ["repository": "file://" + root + "/repo", "catalog": catalog ?? root + "/catalog.db"],
                               environment: [:], configPath: "/dev/null")
    }

    func name(_ n: XLogSegNo) -> String { SegmentID(timeline: 1, segno: n).fileName(size: .default) }
    func time(_ n: XLogSegNo) -> PGTimestamp { PGTimestamp(microseconds: 848_980_022_115_455 + Int64(n) * 1_000_000) }

    /// Archives segment `n` (a commit, then a switch, as PostgreSQL's switched segments end);
    /// `damage` flips a byte inside the commit record first.
    func archive(_ n: XLogSegNo, damage: Bool = false, catalog: String? = nil) throws {
        var w = SyntheticWAL(firstSegment: n)
        let commit = w.appendCommit(time: time(n))
        _ = w.appendSwitch()
        var bytes = w.segment(0)
        if damage { bytes[w.offset(of: commit) + 30] ^= 0x5a }
        try Data(bytes).write(to: URL(fileURLWithPath: root + "/pg_wal/" + name(n)))
        _ = try Archiver(config: try config(catalog: catalog)).push(path: root + "/pg_wal/" + name(n))
    }

    /// A complete backup starting in segment `start` and stopping in it, stored and catalogued.
    func backup(_ label: String, start: XLogSegNo) throws {
        let record = BackupRecord(label: label, startLSN: LSN.start(of: start, size: .default) + 0x28,
                                  stopLSN: LSN.start(of: start, size: .default) + 0x100, startTime: time(start), stopTime: time(start),
                                  timeline: 1, size: 1 << 20, status: .complete, pgVersion: 15, systemIdentifier: String(Self.sysid))
        let contents = BackupContents(archives: [BackupArchive(object: "base.tar.zst", serverName: "base.tar", codec: "zstd", compressedBy: "client",
                                                               storedSize: 3, storedCRC32C: "00000000")],
                                      manifestObject: nil, serverVersionNum: 150_000, walSegmentSize: WALSegmentSize.default.bytes,
                                      firstWALSegment: name(start), lastWALSegment: name(start), streamSeconds: 0, walWaitSeconds: 0, compression: "zstd")
        try repository.store.put(key: BackupMetadata.prefix(label: label) + "base.tar.zst", bytes: [1, 2, 3])
        try repository.store.put(key: BackupMetadata.key(label: label), bytes: try BackupMetadata.encode(record, contents))
        try CatalogAccess(config: try config()).open().recordBackup(record)
    }

    func keys(of n: XLogSegNo) throws -> (meta: String, object: String) {
        let meta = try #require(try repository.meta(for: .segment(name(n))))
        return (RepositoryLayout.metaKey(.segment(name(n))), try #require(meta.objectKey))
    }

    @Test func anIntactArchiveIsCleanAndRecordsWhenItWasChecked() throws {
        for n: XLogSegNo in 10...12 { try archive(n) }
        let r = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(r.ok)
        #expect(r.staleCatalog.isEmpty && r.missingObjects.isEmpty && r.damaged.isEmpty && r.leftovers.isEmpty)
        let info = try ArchiveInfo(config: try config()).run()
        #expect(info.statusCode == "ok" && info.status == "ok")
        #expect(info.catalogCheckedAt != nil)
    }

    @Test func deletedObjectsAreMissingAndRecoverRefusesBeforeTouchingAnything() throws {
        for n: XLogSegNo in 10...13 { try archive(n) }
        try backup("b1", start: 10)
        let recover = Recover(config: try config(), walctl: "/usr/bin/walctl")
        _ = try recover.plan(RecoveryRequest(target: .latest), pgdata: root + "/restore")   // proven: all there
        let (meta, object) = try keys(of: 12)
        try repository.store.delete(key: object)
        let r = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(!r.ok)
        #expect(r.missingObjects.map(\.key) == [object])
        #expect(r.gaps.isEmpty)   // the catalog alone still sees no gap: only the listing does
        let info = try ArchiveInfo(config: try config()).run()
        #expect(info.statusCode == "missing-objects")
        #expect(info.status == "MISSING OBJECTS: 1 file in the catalog is not in the repository (\(name(12))); run walctl verify")
        do {
            _ = try recover.plan(RecoveryRequest(target: .latest), pgdata: root + "/restore")
            Issue.record("a plan with a missing data object was accepted")
        } catch let e as RecoveryRefused {
            #expect(e.refusal.reason == .missingObject)
            #expect(e.refusal.missingObjects == [object])
            #expect(e.refusal.missingSegments == [name(12)])
            #expect(e.refusal.message.contains(object))
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/restore"))
        // The backup's own objects are proven too.
        try repository.store.put(key: object, bytes: [0])
        try repository.store.delete(key: "backup/b1/base.tar.zst")
        #expect(throws: RecoveryRefused.self) { _ = try recover.plan(RecoveryRequest(target: .latest), pgdata: root + "/restore") }
        try repository.store.put(key: "backup/b1/base.tar.zst", bytes: [1, 2, 3])
        // The meta gone as well: MISSING for both; --repair removes the row, which becomes a gap.
        try repository.store.delete(key: object)
        try repository.store.delete(key: meta)
        let before = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(Set(before.missingObjects.map(\.key)) == [meta, object])
        let repaired = try ArchiveVerify(config: try config()).run(deep: false, repair: true)
        #expect(repaired.repaired.map(\.name) == [name(12)])
        #expect(repaired.repaired.first?.detail.contains("gone") == true)
        #expect(repaired.missingObjects.isEmpty)
        #expect(repaired.gaps.map(\.from) == [name(12)])
        #expect(!repaired.ok)
        let catalog = try CatalogAccess(config: try config()).open()
        #expect(try catalog.segment(named: name(12)) == nil)
        #expect(try catalog.archivedRanges(timeline: 1).map(\.firstName) == [name(10), name(13)])
        #expect(try catalog.counts().segments == 3)
    }

    @Test func pushesThatMissedTheCatalogMakeItStaleUntilRepaired() throws {
        for n: XLogSegNo in 10...11 { try archive(n) }
        #expect(try ArchiveVerify(config: try config()).run(deep: false).ok)
        // The catalog cannot be opened by these pushes (its path is under a regular file): they
        // still store the segments and succeed.
        FileManager.default.createFile(atPath: root + "/not-a-dir", contents: Data())
        for n: XLogSegNo in 12...13 { try archive(n, catalog: root + "/not-a-dir/catalog.db") }
        let info = try ArchiveInfo(config: try config()).run()
        #expect(info.statusCode == "stale-catalog")
        #expect(info.status?.hasPrefix("STALE CATALOG: 2 archived objects missing from the catalog") == true)
        let stale = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(!stale.ok)
        #expect(stale.staleCatalog.map(\.name) == [name(12), name(13)])
        let checkedBefore = try CatalogAccess(config: try config()).open().checkedAt()
        let repaired = try ArchiveVerify(config: try config()).run(deep: false, repair: true)
        #expect(repaired.ok)
        #expect(repaired.repaired.map(\.name) == [name(12), name(13)])
        #expect(repaired.timelines.map(\.lastName) == [name(13)])
        #expect(try CatalogAccess(config: try config()).open().checkedAt()! > checkedBefore!)
        #expect(try ArchiveInfo(config: try config()).run().statusCode == "ok")
        // A stale backup too.
        try backup("b1", start: 12)
        try CatalogAccess(config: try config()).open().removeBackup(label: "b1")
        #expect(try ArchiveVerify(config: try config()).run(deep: false).staleCatalog.map(\.name) == ["backup b1"])
        #expect(try ArchiveInfo(config: try config()).run().statusCode == "stale-catalog")
        #expect(try ArchiveVerify(config: try config()).run(deep: false, repair: true).ok)
    }

    @Test func aCatalogThatListsNothingIsNotHealthyWhenTheRepositoryHoldsWAL() throws {
        // Every push missed the catalog, which was created complete and empty.
        let catalog = try CatalogAccess(config: try config()).open()
        try catalog.markComplete()
        FileManager.default.createFile(atPath: root + "/not-a-dir", contents: Data())
        for n: XLogSegNo in 10...11 { try archive(n, catalog: root + "/not-a-dir/catalog.db") }
        #expect(try ArchiveInfo(config: try config()).run().statusCode == "stale-catalog")
        let r = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(r.timeline == nil && !r.ok)
        #expect(r.staleCatalog.map(\.name) == [name(10), name(11)])
    }

    @Test func oldTemporaryAndUnreferencedObjectsAreLeftoversNotErrors() throws {
        for n: XLogSegNo in 10...11 { try archive(n) }
        let dir = root + "/repo/wal/0000000100000000/"
        let old = Date().addingTimeInterval(-2 * 3600)
        for f in [".\(name(11)).1234abcd.zst.tmp.77.xyz", name(12) + ".1234abcd.zst", ".fresh.tmp.1.a"] {
            FileManager.default.createFile(atPath: dir + f, contents: Data([1, 2, 3]))
            if !f.contains("fresh") { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir + f) }
        }
        let r = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(r.ok)   // not an error by themselves
        #expect(r.leftovers.map(\.key) == ["wal/0000000100000000/.\(name(11)).1234abcd.zst.tmp.77.xyz",
                                            "wal/0000000100000000/\(name(12)).1234abcd.zst"])
        #expect(r.leftovers.allSatisfy { $0.size == 3 && $0.modifiedAt != nil })
    }

    @Test func damagedWALIsReportedUntilABackupStartsAfterIt() throws {
        try archive(10)
        try backup("b1", start: 10)
        try archive(11, damage: true)
        try archive(12)
        let catalog = try CatalogAccess(config: try config()).open()
        let row = try #require(try catalog.segment(named: name(11)))
        #expect(row.damagedLSN != nil && row.damage?.contains("CRC") == true)
        let r = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(!r.ok)
        #expect(r.damaged.map(\.name) == [name(11)])
        #expect(r.damaged.first?.lsn == row.damagedLSN)
        #expect(try ArchiveInfo(config: try config()).run().statusCode == "damaged-wal")
        // Rebuilt from the repository alone, the damage is still known (the meta's summary).
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: root + "/catalog.db" + suffix) }
        #expect(try ArchiveVerify(config: try config()).run(deep: false).damaged.map(\.name) == [name(11)])
        // A backup that starts after the damage.
        try backup("b2", start: 12)
        let after = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(after.damaged.isEmpty && after.ok)
        #expect(try ArchiveInfo(config: try config()).run().statusCode == "ok")
    }

    @Test func anEarlyEndOfWALInACompleteSegmentIsDamageButNotInAPartialOne() {
        var s = SegmentSummary()
        s.endOfWAL = LSN(0x0A00_1000); s.endOfWALReason = "zeroed page"
        #expect(SegmentDamage.of(s, segmentStart: LSN(0x0A00_0000), partial: false)?.lsn == LSN(0x0A00_1000))
        #expect(SegmentDamage.of(s, segmentStart: LSN(0x0A00_0000), partial: true) == nil)
        s.crcFailures = 2; s.crcFailureLSNs = [LSN(0x0A00_0800)]
        #expect(SegmentDamage.of(s, segmentStart: LSN(0x0A00_0000), partial: true)?.lsn == LSN(0x0A00_0800))
        #expect(SegmentDamage.of(SegmentSummary(), segmentStart: LSN(0), partial: false) == nil)
    }

    @Test func theProofListsEachDirectoryOnceNotEachObject() throws {
        for n: XLogSegNo in 10...20 { try archive(n) }
        let access = try CatalogAccess(config: try config())
        let proof = RepositoryProof(repository: access.repository, catalog: try access.open())
        #expect(try proof.segmentFindings(timeline: 1, from: 10, to: 20).isEmpty)
        #expect(proof.listingCount == 1)
    }
}
