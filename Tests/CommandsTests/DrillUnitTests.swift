import Catalog
import Foundation
import Testing
import WALFormat
@testable import Commands

/// Issue 16: the parts of `walctl drill` and the incident report that need no server.
@Suite struct DrillUnitTests {
    func drill(daysAgo: Double) -> DrillSummary {
        let t = Date().addingTimeInterval(-daysAgo * 86_400)
        return DrillSummary(startedAt: PGTimestamp(date: t), passed: true, targetType: "latest", targetValue: nil, backupLabel: "b",
                            rtoSeconds: 10, rpoSeconds: 5, failure: nil, key: DrillSummary.key(startedAt: t))
    }

    @Test func drillAgeWarning() {
        let quarter = 92 * 86_400
        #expect(DrillAge.warning(lastPassed: drill(daysAgo: 10), maxAge: quarter) == nil)
        #expect(DrillAge.warning(lastPassed: drill(daysAgo: 100), maxAge: quarter)?.contains("100 days old, more than drill-max-age (92 days)") == true)
        #expect(DrillAge.warning(lastPassed: nil, maxAge: quarter)?.contains("no successful drill") == true)
        #expect(DrillAge.warning(lastPassed: nil, maxAge: 0) == nil)
        #expect(DrillText.infoLines(last: drill(daysAgo: 1), lastPassed: drill(daysAgo: 1), warning: nil)[0].contains("PASSED  target latest  RTO 10.0 s  RPO 5.0 s"))
    }

    @Test func logTimestamps() {
        let t = IncidentReport.timestamp("2026-11-30 16:06:23.516 UTC [123] LOG:  database system is ready to accept connections")
        #expect(t == PGTimestamp(parsing: "2026-11-30 16:06:23.516+00")?.date.timeIntervalSince1970)
        #expect(IncidentReport.timestamp("2026-11-30 17:06:23 +01 [1] LOG:  x") == PGTimestamp(parsing: "2026-11-30 16:06:23+00")?.date.timeIntervalSince1970)
        #expect(IncidentReport.timestamp("2026-11-30 16:06:23.516 CET [1] LOG:  x") == nil)   // a named zone: not guessed
        #expect(IncidentReport.timestamp("LOG:  no prefix") == nil)
    }

    @Test func incidentReportFromADataDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-incident-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t0 = 1_796_053_500.0
        let timing = RestoreTiming(restoreStartedAt: t0, restoreFinishedAt: t0 + 2, bytes: 100, storedBytes: 50, files: 3)
        try JSONEncoder().encode(timing).write(to: URL(fileURLWithPath: dir + "/" + RecoveryFiles.timing))
        try "00000002.history \(t0 + 3.5)\n000000010000000000000002 \(t0 + 4)\n000000010000000000000003 \(t0 + 5)\n"
            .write(toFile: dir + "/" + RecoveryFiles.progress, atomically: true, encoding: .utf8)
        try """
            2026-11-30 15:45:03.000 UTC [9] LOG:  starting PostgreSQL 15.4
            2026-11-30 15:45:03.100 UTC [9] LOG:  starting point-in-time recovery to 2026-11-30 15:40:00+00
            2026-11-30 15:45:05.500 UTC [9] LOG:  recovery stopping before commit of transaction 727, time 2026-11-30 15:40:01+00
            2026-11-30 15:45:06.000 UTC [9] LOG:  database system is ready to accept connections
            """.write(toFile: dir + "/" + RecoveryFiles.log, atomically: true, encoding: .utf8)
        let md = try IncidentReport.markdown(pgdata: dir, log: nil, config: nil)
        for h in ["## Date and time", "## Cause", "## Actions taken", "## Recovery target", "## Restoration time (RTO)", "## Data loss (RPO)", "## Checks", "## Follow-up"] {
            #expect(md.contains(h), "lacks \(h)")
        }
        #expect(md.contains("| restore | 2.00 s | 0.0 MB |"))
        #expect(md.contains("| waiting for the server start | 1.00 s |"))
        #expect(md.contains("| start-up | 0.50 s |"))
        #expect(md.contains("| wal-download | 1.50 s |"))   // from the first file (the history file) to the last
        #expect(md.contains("| replay | 1.00 s |"))
        #expect(md.contains("| total | 6.00 s |"))
        #expect(md.contains("unknown: _(fill in)_"))   // RPO without a configuration
    }

    @Test func missingServerBinariesAreAnError() {
        do {
            _ = try PostgresBinaries.find(major: 7, pgBin: nil, path: "/nonexistent")
            Issue.record("found PostgreSQL 7")
        } catch let e as WalctlError {
            #expect(e.code == "pg-binaries-missing")
            #expect(e.description.contains("/usr/lib/postgresql/7/bin"))
        } catch { Issue.record("\(error)") }
        do {
            _ = try PostgresBinaries.find(major: 15, pgBin: "/nonexistent/bin")
            Issue.record("accepted a pg-bin without postgres")
        } catch let e as WalctlError {
            #expect(e.code == "pg-binaries-missing" && e.description.contains("pg-bin = /nonexistent/bin"))
        } catch { Issue.record("\(error)") }
    }

    @Test func drillMarkdownHasTheRunbookHeadings() {
        let r = DrillResult(key: "drill/x.json", startedAt: PGTimestamp(microseconds: 0), finishedAt: PGTimestamp(microseconds: 5_000_000), passed: false,
                            failure: "sql:/x.sql: result 1 of /x.sql is false", targetType: "latest", repository: "file:///r", host: "h", user: "postgres",
                            scratchDirectory: "/s", kept: false,
                            phases: [DrillPhase(name: "plan", seconds: 1), DrillPhase(name: "restore", seconds: 4, bytes: 8_000_000, bytesPerSecond: 2_000_000)],
                            rtoSeconds: 5, checks: [DrillCheck(name: "sql:/x.sql", status: "failed", detail: "result 1 of /x.sql is false", seconds: 0.1)])
        let md = DrillText.markdown(r)
        for h in ["## Date and time", "## Cause", "## Actions taken", "## Restoration time (RTO)", "## Data loss (RPO)", "## Checks", "## Follow-up"] {
            #expect(md.contains(h), "lacks \(h)")
        }
        #expect(md.contains("| restore | 4.00 s | 8.0 MB | 2.0 MB/s |"))
        #expect(md.contains("| total | 5.00 s |"))
        #expect(md.contains("FAILED: sql:/x.sql"))
        #expect(DrillText.render(r).contains("FAILED sql:/x.sql: result 1 of /x.sql is false"))
    }
}
