import ArgumentParser
import Commands
import Foundation

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Prove archiving works: force a WAL switch and wait for the segment to reach the repository.",
        discussion: "Connects with libpq's standard conninfo (--dbname, or the PG* environment).\n\n"
            + examples("walctl check", "walctl check --dbname 'host=/run/postgresql port=5433'")
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "libpq connection string or URI (default: the PG* environment).") var dbname: String = ""

    func run() throws {
        try runCommand {
            let r = try ArchiveCheck(config: try global.load(), conninfo: dbname).run()
            print("archiving works: \(r.segment) reached the repository in \(String(format: "%.2f", r.seconds)) s")
        }
    }
}
