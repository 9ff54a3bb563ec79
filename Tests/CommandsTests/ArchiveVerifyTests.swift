import Foundation
import Testing
import Storage
import Catalog
import Planner
import TestSupport
import WALFormat
@testable import Commands

/// `walctl verify` (issue 8): continuity from the catalog, the safety valve's skips, and `--deep`
/// reading every object back.
@Suite final class ArchiveVerifyTests {
    let root: String
    deinit { try? FileManager.default.removeItem(atPath: root) }
    let repository: Repository

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-verify-\(UUID().uuidString)").path
        repository = Repository(store: FileStore(root: root + "/repo"), url: "file://" + root + "/repo")
        try repository.bind(RepositoryInfo(systemIdentifier: 7_712_321_645_893_095_454, walSegmentSize: WALSegmentSize.default.bytes,
                                           pgVersion: 15, createdAt: PGTimestamp(microseconds: 0)))
        try FileManager.default.createDirectory(atPath: root + "/pg_wal/archive_status", withIntermediateDirectories: true)
    }

    func config() throws -> Configuration {
        try Configuration.load(flags: ["repository": "file://" + root + "/repo", "catalog": root + "/catalog.db"], environment: [:], configPath: "/dev/null")
    }

    func name(_ n: XLogSegNo) -> String { SegmentID(timeline: 1, segno: n).fileName(size: .default) }

    /// Writes segment `n` into pg_wal and archives it through the configured archiver.
    func archive(_ n: XLogSegNo) throws {
        var w = SyntheticWAL(firstSegment: n)
        _ = w.appendCommit(time: PGTimestamp(microseconds: 848_980_022_115_455 + Int64(n) * 1_000_000))
        _ = w.appendSwitch()   // as PostgreSQL's switched segments end: a zeroed tail without it is damage (issue 12)
        try Data(w.segment(0)).write(to: URL(fileURLWithPath: root + "/pg_wal/" + name(n)))
        _ = try Archiver(config: try config()).push(path: root + "/pg_wal/" + name(n))
    }

    @Test func aContinuousArchiveVerifiesAndDeepReadsEveryObject() throws {
        for n: XLogSegNo in 10...12 { try archive(n) }
        let r = try ArchiveVerify(config: try config()).run(deep: true)
        #expect(r.ok && r.deep)
        #expect(r.objectsRead == 3)
        #expect(r.timelines.map(\.firstName) == [name(10)] && r.timelines.map(\.lastName) == [name(12)])
    }

    @Test func aSkipAGapAndACorruptObjectAreEachReported() throws {
        for n: XLogSegNo in [10, 11, 13, 14, 16] { try archive(n) }
        SafetyValve.skip(name: name(12), size: Int64(WALSegmentSize.default.bytes), reason: "waited 4000 s, more than archive-push-max-age 3600",
                         spool: ArchiveSpool(root: root + "/spool"), config: try config(), logger: WalctlLog.silent)
        let shallow = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(!shallow.ok && !shallow.deep && shallow.objectsRead == 0)
        #expect(shallow.gaps.map(\.from) == [name(12), name(15)])
        #expect(shallow.skipped.map(\.name) == [name(12)])
        #expect(shallow.skipped.first?.reason.contains("archive-push-max-age") == true)
        // A bit flipped in segment 13's stored object: only --deep sees it.
        let key = try #require(try repository.meta(for: .segment(name(13)))?.objectKey)
        var bytes = try #require(try repository.store.get(key: key))
        bytes[bytes.count / 2] ^= 0xff
        try repository.store.put(key: key, bytes: bytes)
        let deep = try ArchiveVerify(config: try config()).run(deep: true)
        #expect(deep.corrupt.map(\.name) == [name(13)])
        #expect(deep.objectsRead == 4)
        #expect(!deep.ok)
        // The same from a catalog rebuilt from the repository alone (the marker restores the skip).
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: root + "/catalog.db" + suffix) }
        let rebuilt = try ArchiveVerify(config: try config()).run(deep: false)
        #expect(rebuilt.skipped.map(\.name) == [name(12)])
    }
}
