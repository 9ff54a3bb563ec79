import ArgumentParser
import Commands
import Foundation
import FastPath

struct ArchivePushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive-push",
        abstract: "Archive one WAL file (archive_command = 'walctl archive-push %p').",
        discussion: "Exits 0 only once the file is durably stored; any failure exits 1 and PostgreSQL retries later.\n\n"
            + examples("archive_command = 'walctl archive-push --config /etc/walctl/walctl.conf %p'",
                       "walctl archive-push pg_wal/000000010000000000000003")
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Path of the file to archive (%p).") var path: String

    func run() throws { try Self.run(load: { try global.load() }, path: path) }

    /// The command's body over plain values: `Walctl.main` calls it directly for the shapes
    /// PostgreSQL runs, without ArgumentParser (docs/benchmarks.md, "Per-call overhead").
    static func run(load: () throws -> Configuration, path: String) throws {
        try runCommand {
            let config = try load()
            let logger = WalctlLog.make(level: config.logLevel)
            let outcome = try Archiver(config: config, logger: logger).push(path: path)
            if case .alreadyArchived(let m) = outcome {
                logger.warning("\(m.name) was already archived with identical content")
            }
        }
    }
}

struct ArchiveGetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive-get",
        abstract: "Restore one WAL file (restore_command = 'walctl archive-get %f %p').",
        usage: """
            walctl archive-get [--config <file>] [--set <name=value> ...] [--progress-file <file>] <wal-file> <path>
              walctl archive-get --cleanup [<dir>]
            """,
        discussion: """
            Exit 0: restored and verified. Exit 1: not in the archive (quietly). Any other failure is \
            retried for archive-get-retry-time seconds, then exits 255 so PostgreSQL stops recovery instead \
            of ending it early (archive-get-on-error = not-found makes it exit 1, for standbys).


            """ + examples("restore_command = 'walctl archive-get --config /etc/walctl/walctl.conf %f %p'",
                           "walctl archive-get 000000010000000000000003 /tmp/000000010000000000000003",
                           "recovery_end_command = 'walctl archive-get --cleanup'")
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Name of the file to restore (%f).") var walFile: String?
    @Argument(help: "Where to write it (%p).") var path: String?
    @Option(name: .customLong("progress-file"), help: ArgumentHelp("After a restore, append `NAME UNIXTIME` to FILE (walctl recover uses it for --status).", valueName: "file"))
    var progressFile: String?
    @Flag(name: .long, help: "Remove the prefetch spool (pg_wal/walctl_prefetch, or DIR/walctl_prefetch for --cleanup DIR) and stop its prefetcher; for recovery_end_command.")
    var cleanup = false

    func run() throws {
        if cleanup {
            PrefetchSpool(dir: (walFile ?? "pg_wal") + "/walctl_prefetch").remove()
            return
        }
        try Self.run(load: { try global.load() }, walFile: walFile, path: path, progressFile: progressFile)
    }

    /// The command's body over plain values (see `ArchivePushCommand.run(load:path:)`).
    static func run(load: () throws -> Configuration, walFile: String?, path: String?, progressFile: String?) throws {
        var errorExit: Int32 = 255
        try runCommand(exitCode: 255) {
            guard let walFile, let path else { throw Failure(error: WalctlError.usage("archive-get needs %f and %p (or --cleanup)"), exitCode: 255) }
            // A configuration archive-get cannot load is a failure (255), never "not found" (1):
            // exit 1 would end recovery early (docs/errors.md, "The exit-1 rule").
            let config: Configuration
            do { config = try load() } catch let f as Failure { throw Failure(error: f.error, exitCode: 255) }
            if config[.archiveGetOnError]?.lowercased() == "not-found" { errorExit = 1 }
            let logger = WalctlLog.make(level: config.logLevel)
            do {
                switch try Archiver(config: config, logger: logger).get(fileName: walFile, targetPath: path) {
                case .restored:
                    if let progressFile { FastFront.appendProgress(progressFile, name: walFile) }
                    return
                case .notFound: throw ExitCode(1)
                }
            } catch let e as ExitCode {
                throw e
            } catch {
                throw Failure(error: error, exitCode: errorExit)
            }
        }
    }
}
