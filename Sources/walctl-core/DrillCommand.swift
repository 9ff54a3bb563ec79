import ArgumentParser
import Commands
import Foundation
import Planner

/// `walctl drill`: a restoration rehearsal with checks, measured RTO and RPO (docs/drills.md).
struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Prove the archive restores: recover into a scratch directory, start PostgreSQL there, run checks, clean up.",
        usage: """
            walctl drill [--to <time> [--time-zone <zone>] | --latest] [--workdir <dir>] [--port <n>]
                [--check-sql <file> ...] [--keep] [--json] [--report <file>] [--config <file>] [--set <name=value> ...]
            """,
        discussion: """
            Plans like `walctl recover` (same refusals), restores into a new scratch directory, starts the backup's \
            PostgreSQL version on a private Unix socket with archiving off, waits until recovery reached the target and \
            promoted, runs the checks (target reached, amcheck, databases, each --check-sql file), stops the server and \
            removes the scratch directory (also on SIGINT/SIGTERM). Reports RTO parts and RPO; stores the result in the \
            repository (drill/<timestamp>.json) and the catalog. Run as the server's user, not root. \
            Exit 0: every check passed; 1: a check failed; 3: the plan was refused; 2: the drill could not run. See docs/drills.md.
            """
    )
    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("to"), help: ArgumentHelp("Recover to this time (ISO 8601 or PostgreSQL form, with a zone).", valueName: "time"))
    var toTime: String?
    @Flag(name: .long, help: "Recover everything archived (the default).")
    var latest = false
    @Option(name: .customLong("time-zone"), help: ArgumentHelp("Zone for a --to time written without one.", valueName: "zone"))
    var timeZone: String?
    @Option(name: .long, help: ArgumentHelp("Directory to create the scratch directory in (default: $XDG_STATE_HOME/walctl/drill or ~/.local/state/walctl/drill).", valueName: "dir"))
    var workdir: String?
    @Option(name: .long, help: ArgumentHelp("Port of the drill's server (Unix socket only, in the private scratch directory; default 5432).", valueName: "n"))
    var port: Int?
    @Option(name: .customLong("check-sql"), help: ArgumentHelp("SQL file run with psql after the built-in checks; an error or a false result fails the drill (repeatable).", valueName: "file"))
    var checkSQL: [String] = []
    @Flag(name: .long, help: "Keep the scratch directory (the server is stopped all the same).")
    var keep = false
    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false
    @Option(name: .customLong("report"), help: ArgumentHelp("Also write the result as a Markdown report with the runbook's headings.", valueName: "file"))
    var reportFile: String?

    func validate() throws {
        guard !(toTime != nil && latest) else { throw ValidationError("--to and --latest exclude each other") }
        if let port, !(1...65535).contains(port) { throw ValidationError("--port must be from 1 to 65535") }
    }

    func run() throws {
        var code: Int32 = 0
        try runCommand(exitCode: 2) {
            let config = try global.load()
            let target: RecoveryTarget = try toTime.map { .time(try TargetTime.parse($0, zone: timeZone)) } ?? .latest
            let files = checkSQL.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
            for f in files where !FileManager.default.isReadableFile(atPath: f) {
                throw WalctlError.refused("--check-sql \(f): cannot read it")
            }
            let drill = Drill(config: config, logger: config.interactiveLogger)
            let result = try drill.run(DrillOptions(target: target, workdir: workdir, port: port, checkSQL: files, keep: keep))
            if let reportFile {
                try DrillOutput.write(DrillText.markdown(result), to: reportFile)
            }
            print(json ? try JSONOutput.render(result) : DrillText.render(result))
            code = result.passed ? 0 : (result.refusal != nil ? 3 : 1)
        }
        if code != 0 { throw ExitCode(code) }
    }
}
