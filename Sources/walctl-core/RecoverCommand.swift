import ArgumentParser
import Commands
import Foundation
import Planner
import WALFormat

/// `walctl recover`: point-in-time recovery, planned and proven before anything is touched.
struct RecoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Restore a base backup and configure PostgreSQL to replay archived WAL up to a target.",
        usage: """
            walctl recover (--to <time> | --to-lsn <X/Y> | --to-name <name> | --to-xid <xid> | --immediate | --latest)
                --pgdata <dir> [--timeline <N|latest>] [--action pause|promote|shutdown] [--inclusive | --exclusive]
                [--time-zone <zone>] [--dry-run] [--json] [--force | --delta] [--tablespace-mapping <olddir=newdir> ...]
                [--config <file>] [--set <name=value> ...]
              walctl recover --status --pgdata <dir> [--log <file>] [--json]
            """,
        discussion: """
            The plan (backup, timeline path, every segment and history file) is checked against the catalog \
            first, then proven present in the repository (listings of its prefixes); when anything is missing, or the target is before the earliest backup or after the last \
            archived commit, walctl refuses with the reason and the nearest recoverable times, and DIR is not \
            touched. See docs/recovery.md.


            """ + examples("walctl recover --to '2026-11-26 14:03:00+00' --pgdata /srv/restore --dry-run",
                           "walctl recover --to-name before_migration --action promote --pgdata /srv/r",
                           "walctl recover --latest --timeline 2 --pgdata /srv/restore --force")
    )
    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("to"), help: ArgumentHelp("Recover to this time (ISO 8601 or PostgreSQL form, with a zone).", valueName: "time"))
    var toTime: String?
    @Option(name: .customLong("to-lsn"), help: ArgumentHelp("Recover to this WAL location.", valueName: "X/Y"))
    var toLSN: String?
    @Option(name: .customLong("to-name"), help: ArgumentHelp("Recover to the restore point with this name.", valueName: "name"))
    var toName: String?
    @Option(name: .customLong("to-xid"), help: ArgumentHelp("Recover to this transaction id (see docs/recovery.md).", valueName: "xid"))
    var toXID: UInt64?
    @Flag(name: .long, help: "Recover only to the end of the base backup (consistency).")
    var immediate = false
    @Flag(name: .long, help: "Recover everything archived on the timeline.")
    var latest = false

    @Option(name: .long, help: ArgumentHelp("Timeline to recover along: a number or latest.", valueName: "N|latest"))
    var timeline: String = "latest"
    @Option(name: .long, help: ArgumentHelp("At the target: pause (default), promote or shutdown.", valueName: "action"))
    var action: String = "pause"
    @Flag(name: .customLong("inclusive"), help: "Stop after the target (time: apply commits at the target time). Default.")
    var inclusiveFlag = false
    @Flag(name: .customLong("exclusive"), help: "Stop before the target (time: not even commits at the target time).")
    var exclusiveFlag = false
    @Option(name: .customLong("time-zone"), help: ArgumentHelp("Zone for a --to time written without one (UTC, Europe/Berlin, +02:00).", valueName: "zone"))
    var timeZone: String?

    @Option(name: .long, help: ArgumentHelp("Data directory to restore into (empty, or --force).", valueName: "dir"))
    var pgdata: String?
    @Flag(name: .customLong("dry-run"), help: "Print the plan; change nothing.")
    var dryRun = false
    @Flag(name: .long, help: "Print JSON (with --dry-run or --status).")
    var json = false
    @Flag(name: .long, help: "Restore into a non-empty data directory after deleting its contents.")
    var force = false
    @Flag(name: .long, help: "Restore into the existing data directory of the same cluster (stopped), rewriting only the files that differ from the backup.")
    var delta = false
    @Option(name: .customLong("tablespace-mapping"), help: ArgumentHelp("Restore the tablespace the server had at OLDDIR into NEWDIR (repeatable).", valueName: "olddir=newdir"))
    var tablespaceMapping: [String] = []
    @Flag(name: .long, help: "Show the progress and outcome of a recovery started in --pgdata.")
    var status = false
    @Option(name: .long, help: ArgumentHelp("Server log for --status (default: walctl_recovery.log in --pgdata).", valueName: "file"))
    var log: String?
    @Option(name: .customLong("report"), help: ArgumentHelp("With --status: write the incident report (Markdown, the runbook's headings: RTO parts, RPO) to this file.", valueName: "file"))
    var reportFile: String?
    @OptionGroup var progressOptions: ProgressOptions

    func validate() throws {
        if status {
            guard pgdata != nil else { throw ValidationError("--status needs --pgdata DIR") }
            return
        }
        guard reportFile == nil else { throw ValidationError("--report needs --status") }
        let n = [toTime != nil, toLSN != nil, toName != nil, toXID != nil, immediate, latest].filter { $0 }.count
        guard n == 1 else { throw ValidationError("name exactly one target: --to TIME, --to-lsn, --to-name, --to-xid, --immediate or --latest") }
        guard !(inclusiveFlag && exclusiveFlag) else { throw ValidationError("--inclusive and --exclusive exclude each other") }
        guard RecoveryAction(rawValue: action) != nil else { throw ValidationError("--action must be pause, promote or shutdown") }
        guard timeline == "latest" || (UInt32(timeline).map { $0 > 0 } ?? false) else { throw ValidationError("--timeline must be a positive number or latest") }
        if toLSN != nil, LSN(toLSN!) == nil { throw ValidationError("--to-lsn expects X/Y in hex, e.g. 0/3000028") }
        guard pgdata != nil else { throw ValidationError("--pgdata DIR is required (also with --dry-run: restore_command is written for it)") }
        if !inclusiveFlag && !exclusiveFlag { return }
        guard toTime != nil || toLSN != nil || toXID != nil else { throw ValidationError("--inclusive/--exclusive apply to --to, --to-lsn and --to-xid only") }
    }

    func request() throws -> RecoveryRequest {
        let target: RecoveryTarget
        if let toTime { target = .time(try TargetTime.parse(toTime, zone: timeZone)) }
        else if let toLSN, let l = LSN(toLSN) { target = .lsn(l) }
        else if let toName { target = .name(toName) }
        else if let toXID { target = .xid(toXID) }
        else if immediate { target = .immediate }
        else { target = .latest }
        return RecoveryRequest(target: target, inclusive: !exclusiveFlag,
                               timeline: timeline == "latest" ? .latest : .number(UInt32(timeline) ?? 1),
                               action: RecoveryAction(rawValue: action) ?? .pause)
    }

    func run() throws {
        try runCommand {
            let dir = pgdata ?? "."
            if status {
                let s = try RecoveryStatus.read(pgdata: dir, log: log)
                if let reportFile {
                    // The configuration gives the catalog (the RPO); the report is written without it.
                    let config = try? global.load()
                    try DrillOutput.write(try IncidentReport.markdown(pgdata: dir, log: log, config: config), to: reportFile)
                }
                print(json ? try JSONOutput.render(s) : s.text)
                return
            }
            let mapping = try RestoreOptions.tablespaceMapping(tablespaceMapping)
            let config = try global.load()
            // Run as root: whose the restored files will be, or a refusal before anything is touched.
            let owner = dryRun ? nil : try Recover.owner(forTarget: dir, arguments: CommandLine.arguments)
            var recover = Recover(config: config, logger: config.interactiveLogger)
            recover.progress = try progressOptions.output(config)
            let plan: RecoveryPlan
            let req = try request()
            do {
                plan = try recover.plan(req, pgdata: dir, register: !dryRun)
            } catch let r as RecoveryRefused {
                if json && dryRun { print(try JSONOutput.render(r.refusal)) }
                describeRefusal(r.refusal)
                throw ExitCode(3)
            }
            if dryRun {
                print(json ? try JSONOutput.render(plan) : describe(plan))
                return
            }
            let outcome = try recover.execute(plan, pgdata: dir, force: force, owner: owner, delta: delta, tablespaceMapping: mapping, target: req.target)
            print(describe(plan))
            print("")
            print("restored backup \(outcome.restore.label): \(Human.count(outcome.restore.files, "file")), \(Human.bytes(outcome.restore.bytes)) in \(Human.duration(outcome.restore.seconds))")
            print("wrote: \(outcome.files.joined(separator: ", "))")
            print("")
            print("start the recovery:")
            print("  \(outcome.startCommand)")
            print("")
            print("before promoting:")
            for c in outcome.checklist { print("  - \(c)") }
        }
    }

    func describe(_ p: RecoveryPlan) -> String {
        func mb(_ b: Int64) -> String { Human.bytes(b) }
        var out = [
            "recovery plan",
            "  target:        \(p.target.type) \(p.target.value ?? "")\(p.target.inclusive.map { $0 ? " (inclusive)" : " (exclusive)" } ?? "")",
            "  timeline:      \(p.timeline), path \(p.timelinePath.map { "\($0.timeline) [\($0.begin)..\($0.end ?? "")]" }.joined(separator: " -> "))",
            "  backup:        \(p.backupLabel) (timeline \(p.backup.timeline), \(p.backup.startLSN)..\(p.backup.stopLSN), stopped \(p.backup.stopTime.postgresLiteral))",
            "  chain:         \(p.backupChain.map { $0.joined(separator: " -> ") + " (\($0.count) backups read, \(mb(p.backupStoredBytes)))" } ?? "full backup")",
            "  WAL:           \(p.firstSegment) .. \(p.lastSegment), \(Human.count(p.segmentCount, "segment")), \(mb(p.walBytes)) (\(mb(p.walStoredBytes)) stored)",
            "  history files: \(p.historyFiles.isEmpty ? "none needed" : p.historyFiles.joined(separator: ", "))",
            "  download:      \(mb(p.bytesToDownload)) (backup \(mb(p.backupStoredBytes)) + WAL \(mb(p.walStoredBytes)))",
            "  estimate:      \(String(format: "%.1f", p.estimatedRecoverySeconds)) s (restore \(String(format: "%.1f", p.estimatedRestoreSeconds)) s, replay \(String(format: "%.1f", p.estimatedReplaySeconds)) s)",
            "  stops:         \(p.expectedStop)",
            "  action:        \(p.action.rawValue)",
            "  settings:",
        ]
        for s in p.settings { out.append("    \(s.name) = '\(s.value)'") }
        for w in p.warnings { out.append("  warning: \(w)") }
        return out.joined(separator: "\n")
    }

    func describeRefusal(_ r: PlanRefusal) {
        report("error [\(r.reason.rawValue)]: \(r.message)")
        if r.missingSegmentCount > 0 {
            let shown = r.missingSegments.prefix(20)
            report("  missing segments (\(r.missingSegmentCount)): \(shown.joined(separator: " "))\(r.missingSegmentCount > UInt64(shown.count) ? " ..." : "")")
        }
        if !r.missingHistoryFiles.isEmpty { report("  missing history files: \(r.missingHistoryFiles.joined(separator: " "))") }
        if !r.missingObjects.isEmpty {
            let shown = r.missingObjects.prefix(20)
            report("  missing objects (\(r.missingObjects.count)): \(shown.joined(separator: " "))\(r.missingObjects.count > shown.count ? " ..." : "")")
        }
        report("  nearest recoverable target before: \(r.nearestRecoverableBefore?.postgresLiteral ?? "none")")
        report("  nearest recoverable target after:  \(r.nearestRecoverableAfter?.postgresLiteral ?? "none")")
        report("  nothing was changed")
    }
}
