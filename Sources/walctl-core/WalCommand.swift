import ArgumentParser
import Commands
import Foundation

struct WalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wal", abstract: "Inspect WAL files.",
                                                    discussion: examples("walctl wal show pg_wal/000000010000000000000003"), subcommands: [Show.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Summarise one segment: records, commit times, restore points, checkpoints, switch, CRC failures.",
            discussion: "A record belongs to the segment in which it starts; one that continues into the next segment is counted here and its CRC is not checked (that is not a failure).\n\n"
                + examples("walctl wal show pg_wal/000000010000000000000003", "walctl wal show /tmp/000000010000000000000003 --json")
        )
        @Argument(help: "A WAL segment file.") var file: String
        @Flag(name: .long, help: "Print one JSON object.") var json = false

        func run() throws {
            try runCommand {
                let (summary, header) = try WalShow.summarize(path: file)
                print(json ? try WalShow.json(summary, header: header, file: file) : WalShow.text(summary, header: header, file: file))
            }
        }
    }
}
