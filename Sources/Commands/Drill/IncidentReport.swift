import Catalog
import Foundation
import Planner
import WALFormat

/// `walctl recover --status --report FILE`: the runbook's incident report for a real recovery in a
/// data directory, from what `walctl recover` left there (the plan, `RestoreTiming`, the restore
/// command's progress file) and the server log (docs/drills.md).
public enum IncidentReport {
    /// The report as Markdown. `config`, when it loads, gives the catalog for the RPO (the last
    /// archived commit on the recovered timeline); without it the RPO is left as a field.
    public static func markdown(pgdata: String, log: String?, config: Configuration?, now: Date = Date()) throws -> String {
        let status = try RecoveryStatus.read(pgdata: pgdata, log: log, now: now)
        let dir = status.pgdata
        let plan = FileManager.default.contents(atPath: dir + "/" + RecoveryFiles.plan).flatMap { try? JSONDecoder().decode(RecoveryPlan.self, from: $0) }
        let timing = FileManager.default.contents(atPath: dir + "/" + RecoveryFiles.timing).flatMap { try? JSONDecoder().decode(RestoreTiming.self, from: $0) }
        let progress = Drill.progressTimes(dir + "/" + RecoveryFiles.progress)
        let events = status.logFile.map { logEvents($0) } ?? LogEvents()

        var phases: [ReportPhase] = []
        var mark: Double?
        func add(_ name: String, until end: Double?, bytes: Int64? = nil, detail: String? = nil) {
            guard let end, let m = mark, end >= m else {
                phases.append(ReportPhase(name: name, seconds: 0, detail: "not measured" + (detail.map { ": \($0)" } ?? "")))
                return
            }
            let s = end - m
            phases.append(ReportPhase(name: name, seconds: s, bytes: bytes, bytesPerSecond: bytes.flatMap { s > 0 ? Double($0) / s : nil }, detail: detail))
            mark = end
        }
        if let t = timing {
            mark = t.restoreStartedAt
            add("restore", until: t.restoreFinishedAt, bytes: t.storedBytes, detail: "\(t.files) files, \(t.bytes) bytes written")
        }
        if let started = events.started {
            if let m = mark {
                phases.append(ReportPhase(name: "waiting for the server start", seconds: max(0, started - m), detail: "between walctl recover and the operator's start command"))
            }
            mark = started
        }
        add("start-up", until: progress.first ?? events.reached, detail: "until the restore command delivered its first file")
        if progress.first != nil {
            add("wal-download", until: progress.last, bytes: plan?.walStoredBytes, detail: "\(progress.segments) segments delivered (replay runs alongside)")
        }
        add("replay", until: events.reached, bytes: plan?.walBytes, detail: events.reachedLine)
        let first = timing?.restoreStartedAt ?? events.started
        let total = (first != nil && events.reached != nil) ? events.reached! - first! : nil
        phases.append(ReportPhase(name: "total", seconds: total ?? 0, detail: total == nil ? "not measured (recovery not finished, or the log has no timestamps)" : nil))

        // RPO: from the recovered point to the last commit archived from the failed server.
        var recoveredTo: PGTimestamp?
        var rpo: Double?
        var rpoMeaning = "time between the recovered point and the last commit archived before the failure: transactions archived after the target are not in the recovered database (plus whatever the failed server never archived)"
        if let plan {
            if plan.target.type == "time", let v = plan.target.value { recoveredTo = PGTimestamp(parsing: v) }
            if recoveredTo == nil, let l = status.lastCompletedTransaction { recoveredTo = PGTimestamp(parsing: l) }
            if let config, let catalog = try? CatalogAccess(config: config).open(), let windows = try? catalog.recoverableWindows() {
                let lastCommit = windows.first { $0.timeline == plan.timeline }?.latestArchivedXactTime
                if let lastCommit {
                    if plan.target.type == "latest" {
                        rpo = 0
                        rpoMeaning = "recovered to the last archived commit (\(lastCommit.iso8601)): nothing archived was lost, only what the failed server never archived"
                    } else if let r = recoveredTo {
                        rpo = max(0, Double(lastCommit.microseconds - r.microseconds) / 1e6)
                        rpoMeaning += "; last archived commit \(lastCommit.iso8601)"
                    }
                }
            }
        }
        let targetText = plan.map { $0.target.type == "latest" ? "latest (everything archived)" : "\($0.target.type) \($0.target.value ?? "")" } ?? status.target.map { "\($0.type) \($0.value ?? "")" } ?? "unknown"
        var checks = [DrillCheck(name: "reached-target", status: status.targetReached == true ? "passed" : (status.targetReached == false ? "failed" : "unknown"),
                                 detail: "state \(status.state)" + (status.stoppedAt.map { ": \($0)" } ?? ""), seconds: 0)]
        for e in status.errors { checks.append(DrillCheck(name: "server error", status: "failed", detail: e, seconds: 0)) }
        let startText = first.map { PGTimestamp(date: Date(timeIntervalSince1970: $0)).iso8601 } ?? Report.field
        return Report(
            title: "Incident report: recovery of \(dir)",
            when: "recovery from \(startText) to \(events.reached.map { PGTimestamp(date: Date(timeIntervalSince1970: $0)).iso8601 } ?? "(not finished)"); incident: \(Report.field)",
            cause: Report.field,
            actions: ["`walctl recover` restored backup \(plan?.backupLabel ?? "?") into \(dir) and configured recovery to \(targetText)",
                      "the server replayed archived WAL (log: \(status.logFile ?? "not found"))"],
            target: targetText, plan: plan, repository: config?[.repository] ?? Report.field, phases: phases,
            rpo: rpo, recoveredTo: recoveredTo, rpoMeaning: rpoMeaning, checks: checks,
            outcome: "State: \(status.state)\(status.serverRunning ? " (server running)" : ""). Validate the recovered data (the runbook's smoke tests; `walctl drill --check-sql` runs the same files) and record the result here: \(Report.field)",
            recovery: status).markdown
    }

    struct LogEvents {
        /// The first timestamped line (the server's start), the moment recovery reached its end.
        var started: Double?
        var reached: Double?
        var reachedLine: String?
    }

    /// Reads the timestamps of the server log's lines (`log_line_prefix` starting with `%m` or
    /// `%t`: `2026-11-30 16:06:23.516 UTC`): its first line, and the line where recovery reached the
    /// target (paused, promoted: ready to accept connections, or shut down).
    static func logEvents(_ path: String) -> LogEvents {
        var e = LogEvents()
        guard let text = RecoveryStatus.readTail(path, max: 16 << 20) else { return e }
        var sawRecovery = false
        for raw in text.split(separator: "\n") {
            let line = String(raw)
            guard let t = timestamp(line) else { continue }
            if e.started == nil { e.started = t }
            if line.contains("starting archive recovery") || line.contains("starting point-in-time recovery") { sawRecovery = true }
            if line.contains("pausing at the end of recovery") || line.contains("recovery has paused") || line.contains("shutdown at recovery target")
                || (sawRecovery && line.contains("database system is ready to accept connections")) {
                if e.reached == nil {
                    e.reached = t
                    e.reachedLine = line.range(of: "LOG:  ").map { String(line[$0.upperBound...]) } ?? line
                }
            }
        }
        return e
    }

    /// The UNIX time of a line starting `YYYY-MM-DD HH:MM:SS[.fff] ZONE` (UTC, GMT or a numeric offset).
    static func timestamp(_ line: String) -> Double? {
        let f = line.split(separator: " ", maxSplits: 3)
        guard f.count >= 3, f[0].count == 10, f[1].count >= 8 else { return nil }
        var zone = String(f[2])
        if zone == "UTC" || zone == "GMT" { zone = "+00" }
        guard zone.hasPrefix("+") || zone.hasPrefix("-") else { return nil }
        return PGTimestamp(parsing: "\(f[0]) \(f[1])\(zone)").map { $0.date.timeIntervalSince1970 }
    }
}
