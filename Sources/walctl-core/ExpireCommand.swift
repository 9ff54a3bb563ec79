import ArgumentParser
import Commands
import Foundation
import WALFormat

struct ExpireCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expire",
        abstract: "Remove the backups and WAL the retention settings no longer keep.",
        discussion: """
            Keeps what retention-window, retention-full and retention-archive-full ask for (docs/retention.md); \
            refuses when none is set. Takes the repository lease; honours running backups and recoveries.
            """
    )
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print what would be removed and why; remove nothing.") var dryRun = false
    @Flag(name: .long, help: "Print JSON (the plan, what was removed, requests).") var json = false
    @Option(name: .long, help: ArgumentHelp("Plan as if it were this time (with a zone), e.g. to see with --dry-run what expire will remove tomorrow.", valueName: "time")) var now: String?

    func run() throws {
        try runCommand {
            var options = ExpireOptions()
            options.dryRun = dryRun
            if let now {
                guard let t = PGTimestamp(parsing: now) else { throw ValidationError("--now needs a time with a zone, e.g. '2026-11-30 14:03:00+00'") }
                options.now = t.date
            }
            let config = try global.load()
            let result = try Expire(config: config, logger: config.interactiveLogger).run(options)
            if json {
                print(try JSONOutput.render(result))
            } else {
                print(result.text)
            }
        }
    }
}
