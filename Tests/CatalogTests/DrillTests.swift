import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

@Suite struct DrillTests {
    func summary(_ t: Int64, passed: Bool) -> DrillSummary {
        DrillSummary(startedAt: at(t), passed: passed, targetType: "time", targetValue: at(t - 60).iso8601, backupLabel: "b1",
                     rtoSeconds: 12.5, rpoSeconds: 60, failure: passed ? nil : "sql:x.sql: result 1 is false",
                     key: DrillSummary.key(startedAt: at(t).date))
    }

    @Test func keyIsTheUTCTimestamp() {
        #expect(DrillSummary.key(startedAt: Date(timeIntervalSince1970: 1_796_053_500)) == "drill/20261130T154500Z.json")
    }

    @Test func lastDrillAndLastPassedDrill() throws {
        let c = try standardCatalog(tempDir())
        #expect(try c.info(now: at(1)).lastDrill == nil)
        try c.recordDrill(summary(100, passed: true))
        try c.recordDrill(summary(200, passed: false))
        let i = try c.info(now: at(300))
        #expect(i.lastDrill == summary(200, passed: false))
        #expect(i.lastPassedDrill == summary(100, passed: true))
        // info --json carries it (the key).
        let json = String(decoding: try JSONEncoder().encode(i), as: UTF8.self)
        #expect(json.contains("\"lastDrill\""))
    }

    @Test func rebuildReadsDrillRecordsBack() throws {
        let d = tempDir()
        let repo = try populateRepository(d)
        // The full record has more keys than the summary: they are ignored.
        var full = try JSONSerialization.jsonObject(with: JSONEncoder().encode(summary(500, passed: true))) as! [String: Any]
        full["phases"] = [["name": "plan", "seconds": 0.1]]
        full["formatVersion"] = 1
        try repo.store.put(key: summary(500, passed: true).key, bytes: Array(JSONSerialization.data(withJSONObject: full)))
        try repo.store.put(key: "drill/garbage.json", bytes: Array("{".utf8))
        let c = try Catalog(path: d + "/rebuilt.db", repositoryURL: "file://" + d + "/repo", segmentSize: seg16)
        let report = try c.rebuild(from: repo, parallelism: 2, loadHistory: { histories[$0] })
        #expect(report.drills == 1)
        #expect(report.unreadable.contains { $0.hasPrefix("drill/garbage.json") })
        #expect(try c.lastDrills().last == summary(500, passed: true))
    }

    @Test func aVersion3CatalogGainsTheDrillTable() throws {
        let d = tempDir()
        do {
            let old = try Catalog(path: d + "/catalog.db", repositoryURL: "file:///r", segmentSize: seg16)
            try old.markComplete()
            try old.conn.exec("DROP TABLE drill; PRAGMA user_version=3")
        }
        let c = try Catalog(path: d + "/catalog.db", repositoryURL: "file:///r", segmentSize: seg16)
        #expect(try c.conn.scalar("PRAGMA user_version") == Int64(Catalog.schemaVersion))
        #expect(try c.isComplete() == false)   // rebuilt before use: the drill records come back from drill/
        try c.recordDrill(summary(1, passed: true))
        #expect(try c.lastDrills().lastPassed != nil)
    }

    @Test func backupRecordsWithoutDatabasesStillDecode() throws {
        let b = standardBackups[0]
        var bytes = String(decoding: try b.encoded(), as: UTF8.self)
        #expect(!bytes.contains("databases"))
        var withSizes = b
        withSizes.databases = [DatabaseSize(name: "postgres", bytes: 7_000_000)]
        bytes = String(decoding: try withSizes.encoded(), as: UTF8.self)
        #expect(try BackupRecord.decode(Array(bytes.utf8), key: "k").databases == [DatabaseSize(name: "postgres", bytes: 7_000_000)])
    }
}
