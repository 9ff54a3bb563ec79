import Foundation
import Testing
import WALFormat
@testable import Catalog

/// `Catalog.metricsExtras()`: the newest archived commit, and the newest drill from an optional
/// `drill` table whose columns are found by name.
@Suite struct MetricsExtrasTests {
    func catalog() throws -> Catalog { try Catalog(path: tempDir() + "/c.db", repositoryURL: "file:///r", segmentSize: seg16) }

    @Test func lastCommitIsTheNewestArchivedSegmentWithACommit() throws {
        let c = try catalog()
        #expect(try c.metricsExtras() == CatalogMetricsExtras(lastArchivedCommit: nil, lastDrill: nil))
        try c.recordArchived(segmentMeta(1, 1, first: 10, last: 50, archived: 100))
        try c.recordArchived(segmentMeta(1, 2, first: 60, last: 70, archived: 200))
        // Archived last, but without a commit (an idle segment closed by archive_timeout).
        try c.recordArchived(segmentMeta(1, 3, first: nil, last: nil, archived: 300))
        #expect(try c.metricsExtras().lastArchivedCommit == at(70))
    }

    @Test func noDrillTableMeansNoDrill() throws {
        #expect(try catalog().metricsExtras().lastDrill == nil)
    }

    @Test func newestDrillWithTextResultAndSeconds() throws {
        let c = try catalog()
        try c.conn.exec("CREATE TABLE drill(repo INTEGER, started_at INTEGER, finished_at INTEGER, result TEXT, rto_seconds REAL)")
        #expect(try c.metricsExtras().lastDrill == nil)
        try c.conn.exec("""
            INSERT INTO drill VALUES(\(c.repo), \(at(0).microseconds), \(at(100).microseconds), 'passed', 42.5);
            INSERT INTO drill VALUES(\(c.repo), \(at(1000).microseconds), \(at(1300).microseconds), 'failed', 300);
            INSERT INTO drill VALUES(\(c.repo + 1), \(at(5000).microseconds), \(at(5100).microseconds), 'passed', 1);
            """)
        let d = try #require(try c.metricsExtras().lastDrill)
        #expect(d == DrillSummary(time: at(1300), passed: false, rtoSeconds: 300))
    }

    @Test func drillWithBooleanResultAndMilliseconds() throws {
        let c = try catalog()
        try c.conn.exec("CREATE TABLE drill(started_at INTEGER, passed INTEGER, rto_ms INTEGER)")
        try c.conn.exec("INSERT INTO drill VALUES(\(at(10).microseconds), 1, 61500); INSERT INTO drill VALUES(\(at(5).microseconds), 0, 1)")
        #expect(try c.metricsExtras().lastDrill == DrillSummary(time: at(10), passed: true, rtoSeconds: 61.5))
    }
}
