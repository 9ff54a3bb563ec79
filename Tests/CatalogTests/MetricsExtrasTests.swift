import Foundation
import Testing
import WALFormat
@testable import Catalog

/// `Catalog.metricsExtras()`: the newest archived commit, and the newest drills (`walctl drill`).
@Suite struct MetricsExtrasTests {
    func catalog() throws -> Catalog { try Catalog(path: tempDir() + "/c.db", repositoryURL: "file:///r", segmentSize: seg16) }

    @Test func lastCommitIsTheNewestArchivedSegmentWithACommit() throws {
        let c = try catalog()
        #expect(try c.metricsExtras() == CatalogMetricsExtras(lastArchivedCommit: nil, lastDrill: nil, lastPassedDrill: nil))
        try c.recordArchived(segmentMeta(1, 1, first: 10, last: 50, archived: 100))
        try c.recordArchived(segmentMeta(1, 2, first: 60, last: 70, archived: 200))
        // Archived last, but without a commit (an idle segment closed by archive_timeout).
        try c.recordArchived(segmentMeta(1, 3, first: nil, last: nil, archived: 300))
        #expect(try c.metricsExtras().lastArchivedCommit == at(70))
    }

    @Test func newestDrillAndNewestPassedDrill() throws {
        let c = try catalog()
        #expect(try c.metricsExtras().lastDrill == nil)
        func drill(_ t: Int64, passed: Bool) -> DrillSummary {
            DrillSummary(startedAt: at(t), passed: passed, targetType: "latest", targetValue: nil, backupLabel: "b1",
                         rtoSeconds: Double(t) / 10, rpoSeconds: 1, failure: passed ? nil : "check", key: "drill/\(t).json")
        }
        try c.recordDrill(drill(100, passed: true))
        try c.recordDrill(drill(1300, passed: false))
        let e = try c.metricsExtras()
        #expect(e.lastDrill == drill(1300, passed: false))
        #expect(e.lastPassedDrill == drill(100, passed: true))
    }
}
