import Catalog
import Foundation
import Planner
import WALFormat

/// `walctl info`'s drill warning.
public enum DrillAge {
    /// A warning line when the last successful drill is older than `maxAge` seconds, or there is
    /// none; nil when it is recent enough or `maxAge` is 0.
    public static func warning(info: CatalogInfo, maxAge: Int, now: Date = Date()) -> String? {
        warning(lastPassed: info.lastPassedDrill, maxAge: maxAge, now: now)
    }

    public static func warning(lastPassed: DrillSummary?, maxAge: Int, now: Date = Date()) -> String? {
        guard maxAge > 0 else { return nil }
        let days = Double(maxAge) / 86_400
        guard let p = lastPassed else {
            return "WARNING: no successful drill recorded: prove that the archive restores with `walctl drill` (drill-max-age: \(DrillText.days(days)))"
        }
        let age = now.timeIntervalSince(p.startedAt.date)
        guard age > Double(maxAge) else { return nil }
        return "WARNING: the last successful drill (\(p.startedAt.iso8601)) is \(DrillText.days(age / 86_400)) old, more than drill-max-age (\(DrillText.days(days))): run `walctl drill`"
    }
}

/// Text and Markdown renderings of drills and incident reports.
public enum DrillText {
    static func days(_ d: Double) -> String { d >= 10 ? String(format: "%.0f days", d) : String(format: "%.1f days", d) }

    public static func duration(_ s: Double) -> String {
        if s < 120 { return String(format: "%.1f s", s) }
        if s < 7200 { return String(format: "%.1f min", s / 60) }
        if s < 172_800 { return String(format: "%.1f h", s / 3600) }
        return String(format: "%.1f days", s / 86_400)
    }

    static func bytes(_ b: Int64) -> String { String(format: "%.1f MB", Double(b) / 1e6) }

    static func phaseLine(_ p: DrillPhase) -> String {
        var s = "\(p.name): \(duration(p.seconds))"
        if let b = p.bytes, b > 0 { s += ", \(bytes(b))" }
        if let r = p.bytesPerSecond, r > 0, (p.bytes ?? 0) > 0 { s += String(format: " (%.1f MB/s)", r / 1e6) }
        if let d = p.detail { s += "  [\(d)]" }
        return s
    }

    static func target(_ r: DrillResult) -> String {
        r.targetType == "latest" ? "latest (everything archived)" : "\(r.targetType) \(r.targetValue ?? "")"
    }

    /// `walctl info`'s lines about drills.
    public static func infoLines(_ i: CatalogInfo) -> [String] {
        infoLines(last: i.lastDrill, lastPassed: i.lastPassedDrill, warning: i.drillWarning)
    }

    public static func infoLines(last: DrillSummary?, lastPassed: DrillSummary?, warning: String?) -> [String] {
        var out: [String] = []
        if let d = last {
            let t = d.targetType == "latest" ? "latest" : "\(d.targetType) \(d.targetValue ?? "")"
            out.append("last drill: \(d.startedAt.iso8601)  \(d.passed ? "PASSED" : "FAILED")  target \(t)"
                       + (d.rtoSeconds.map { "  RTO \(duration($0))" } ?? "") + (d.rpoSeconds.map { "  RPO \(duration($0))" } ?? "")
                       + (d.failure.map { "  (\($0))" } ?? ""))
            if !d.passed, let p = lastPassed { out.append("last successful drill: \(p.startedAt.iso8601)") }
        } else {
            out.append("last drill: none")
        }
        if let w = warning { out.append(w) }
        return out
    }

    /// The drill in a few lines for the terminal.
    public static func render(_ r: DrillResult) -> String {
        var out = ["drill \(r.passed ? "PASSED" : "FAILED"): target \(target(r))" + (r.backupLabel.map { " from backup \($0)" } ?? "")]
        if let f = r.failure { out.append("  reason: \(f)") }
        if let p = r.plan { out.append("  WAL: \(p.firstSegment) .. \(p.lastSegment), \(p.segmentCount) segments on timeline \(p.timeline)") }
        if let s = r.recovery?.stoppedAt { out.append("  stopped: \(s)") }
        out.append("  RTO \(r.rtoSeconds.map(duration) ?? "?"):")
        for p in r.phases { out.append("    " + phaseLine(p)) }
        out.append("  RPO \(r.rpoSeconds.map(duration) ?? "?")" + (r.recoveredTo.map { " (recovered to \($0.iso8601); drill at \(r.startedAt.iso8601))" } ?? ""))
        out.append("  checks:")
        for c in r.checks { out.append("    \(c.status.uppercased()) \(c.name): \(c.detail)") }
        if r.checks.isEmpty { out.append("    none ran") }
        out.append("  record: \(r.key)\(r.kept ? "; scratch directory kept: \(r.scratchDirectory)" : "")")
        return out.joined(separator: "\n")
    }

    /// The drill as a Markdown report with the runbook's headings.
    public static func markdown(_ r: DrillResult) -> String {
        var phases: [ReportPhase] = r.phases.map { ReportPhase(name: $0.name, seconds: $0.seconds, bytes: $0.bytes, bytesPerSecond: $0.bytesPerSecond, detail: $0.detail) }
        phases.append(ReportPhase(name: "total", seconds: r.rtoSeconds ?? 0))
        return Report(
            title: "Restoration drill \(r.startedAt.iso8601): \(r.passed ? "PASSED" : "FAILED")",
            when: "\(r.startedAt.iso8601) to \(r.finishedAt.iso8601) on \(r.host) as \(r.user)",
            cause: "Scheduled restoration drill (`walctl drill`): no incident.",
            actions: ["`walctl drill` restored backup \(r.backupLabel ?? "?") into \(r.scratchDirectory), replayed archived WAL to the target, ran the checks, removed the scratch directory\(r.kept ? " (kept: --keep)" : "")"],
            target: target(r), plan: r.plan, repository: r.repository, phases: phases,
            rpo: r.rpoSeconds, recoveredTo: r.recoveredTo, rpoMeaning: "time between the data recovered and the drill: what a failure at the moment of the drill would lose with this archive",
            checks: r.checks, outcome: r.passed ? "Every check passed." : "FAILED: \(r.failure ?? "a check failed")",
            recovery: r.recovery).markdown
    }
}

/// One line of a report's RTO table.
public struct ReportPhase: Codable, Equatable, Sendable {
    public var name: String
    public var seconds: Double
    public var bytes: Int64? = nil
    public var bytesPerSecond: Double? = nil
    public var detail: String? = nil
}

/// The runbook's incident report (section 6): date and time, cause, actions, RTO, RPO, checks.
/// Fields walctl cannot know are left for the operator as `_(fill in)_`.
struct Report {
    var title: String
    var when: String
    var cause: String
    var actions: [String]
    var target: String
    var plan: RecoveryPlan?
    var repository: String
    var phases: [ReportPhase]
    var rpo: Double?
    var recoveredTo: PGTimestamp?
    var rpoMeaning: String
    var checks: [DrillCheck]
    var outcome: String
    var recovery: RecoveryStatus?

    static let field = "_(fill in)_"

    var markdown: String {
        var o = ["# \(title)", ""]
        o += ["## Date and time", "", when, ""]
        o += ["## Cause", "", cause, ""]
        o += ["## Actions taken", ""] + actions.map { "- \($0)" } + ["- \(Self.field)", ""]
        o += ["## Recovery target", "", "- target: \(target)"]
        if let p = plan {
            o += ["- backup: \(p.backupLabel) (timeline \(p.backup.timeline), \(p.backup.startLSN)..\(p.backup.stopLSN), stopped \(p.backup.stopTime.iso8601))",
                  "- WAL range: \(p.firstSegment) .. \(p.lastSegment), \(p.segmentCount) segments on timeline \(p.timeline) (\(DrillText.bytes(p.walBytes)), \(DrillText.bytes(p.walStoredBytes)) stored)",
                  "- repository: \(repository)"]
        }
        if let s = recovery?.stoppedAt { o.append("- stopped: \(s)") }
        if let l = recovery?.lastCompletedTransaction { o.append("- last completed transaction: \(l)") }
        o += ["", "## Restoration time (RTO)", "", "| part | time | bytes | rate | note |", "|---|---|---|---|---|"]
        for p in phases {
            let b = (p.bytes ?? 0) > 0 ? DrillText.bytes(p.bytes!) : ""
            let r = (p.bytesPerSecond ?? 0) > 0 && (p.bytes ?? 0) > 0 ? String(format: "%.1f MB/s", p.bytesPerSecond! / 1e6) : ""
            o.append("| \(p.name) | \(String(format: "%.2f s", p.seconds)) | \(b) | \(r) | \(p.detail ?? "") |")
        }
        o += ["", "## Data loss (RPO)", ""]
        if let rpo { o.append("\(DrillText.duration(rpo)) (\(String(format: "%.0f", rpo)) s): \(rpoMeaning)" + (recoveredTo.map { "; recovered to \($0.iso8601)" } ?? "")) } else { o.append("unknown: \(Self.field)") }
        o += ["", "## Checks", ""]
        if checks.isEmpty { o.append("- none ran") }
        for c in checks { o.append("- **\(c.status)** \(c.name): \(c.detail)") }
        o += ["", "## Outcome", "", outcome, ""]
        o += ["## Follow-up", "", "- \(Self.field)", ""]
        return o.joined(separator: "\n")
    }
}

/// Writes a report file (atomically: LocalFS, mode 0644: reports are for people).
public enum DrillOutput {
    public static func write(_ text: String, to path: String) throws {
        try writeFile(absolutePath(path), Data(text.utf8), append: false, mode: 0o644)
    }
}
