import ArgumentParser
import Catalog
import Codec
import Commands
import Foundation

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take an online base backup over libpq into the repository.",
        discussion: """
            Connects with libpq's standard conninfo: --dbname, or the PG* environment \
            (PGHOST=/run/postgresql walctl backup). Succeeds only once every WAL segment from the backup's \
            start to its stop is archived, so every backup it reports is restorable.
            """,
        subcommands: [Take.self, List.self, Show.self, Pin.self, Unpin.self],
        defaultSubcommand: Take.self
    )

    struct Take: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "take", abstract: "Take a base backup (the default).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "libpq connection string or URI (default: the PG* environment).") var dbname: String = ""
        @Option(name: .long, help: "Backup label (default: from the start time).") var label: String?
        @Option(name: .long, help: "Where to compress: auto (in the server for zstd on PostgreSQL 15+), server or client.") var compressWhere: String = "auto"
        @Flag(name: .long, help: "Spread the checkpoint instead of an immediate one.") var spreadCheckpoint = false
        @Option(name: .long, help: ArgumentHelp("An annotation stored with the backup (repeatable); shown by backup show and backup list --json.", valueName: "key=value")) var annotation: [String] = []

        func run() throws {
            try runCommand {
                let config = try global.load()
                let access = try CatalogAccess(config: config, note: report)
                var options = BackupOptions()
                options.label = label
                options.fastCheckpoint = !spreadCheckpoint
                options.archiveTimeout = TimeInterval(try config.int(.archiveCheckTimeout) ?? 60)
                let (codec, level) = try config.compression()
                switch compressWhere {
                case "auto": options.compression = .automatic(codec, level: level)
                case "server": options.compression = .server(level: level ?? 3)
                case "client": options.compression = .client(codec, level: level)
                default: throw ValidationError("--compress-where must be auto, server or client")
                }
                for a in annotation {
                    guard let eq = a.firstIndex(of: "="), eq != a.startIndex else {
                        throw ValidationError("--annotation expects key=value, got \(a)")
                    }
                    options.annotations[String(a[..<eq])] = String(a[a.index(after: eq)...])
                }
                // expire-auto: refuse before the backup, not after it, when no retention rule is set.
                let autoExpire = try config.bool(.expireAuto)
                if autoExpire { _ = try Expire.policy(config) }
                let catalog = try? access.open()
                let record = try takeBackup(connection: dbname, repository: access.repository, options: options, catalog: catalog, log: { report($0) })
                print("backup \(record.label) complete: \(record.startLSN) .. \(record.stopLSN) on timeline \(record.timeline), \(record.size / 1048576) MiB")
                if autoExpire {
                    do {
                        print(try Expire(config: config, note: { report($0) }).run().text)
                    } catch {
                        report("backup \(record.label) is complete, but expire-auto failed:")
                        throw error
                    }
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the backups in the repository.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print JSON: an array of backups (label, startLSN, stopLSN, startTime, stopTime, timeline, size, ...).") var json = false

        func run() throws {
            try runCommand {
                let access = try CatalogAccess(config: try global.load(), note: report)
                let backups = try BackupMetadata.list(repository: access.repository)
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try enc.encode(backups), as: UTF8.self))
                    return
                }
                if backups.isEmpty { print("no backups in \(access.repository.url)"); return }
                for b in backups {
                    print("\(b.label)  timeline \(b.timeline)  \(b.startLSN) .. \(b.stopLSN)  \(b.startTime.iso8601) .. \(b.stopTime.iso8601)  \(b.size / 1048576) MiB  \(b.status)\(b.pinned == true ? "  pinned" : "")")
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one backup's record and contents.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The backup label.") var label: String

        func run() throws {
            try runCommand {
                let access = try CatalogAccess(config: try global.load(), note: report)
                var (record, contents) = try BackupMetadata.read(label: label, repository: access.repository)
                if try access.repository.store.head(key: BackupRecord.pinKey(label: label)) != nil { record.pinned = true }
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(record), as: UTF8.self))
                print(String(decoding: try enc.encode(contents), as: UTF8.self))
            }
        }
    }
}

extension BackupCommand {
    struct Pin: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pin", abstract: "Pin a backup: expire never removes it or the WAL it needs to be consistent.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The backup label.") var label: String
        func run() throws {
            try runCommand {
                let access = try CatalogAccess(config: try global.load(), note: report)
                try BackupMetadata.setPinned(label: label, true, repository: access.repository, catalog: try? access.open(), log: { report($0) })
                print("backup \(label) pinned")
            }
        }
    }

    struct Unpin: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Unpin a backup: the retention settings decide again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The backup label.") var label: String
        func run() throws {
            try runCommand {
                let access = try CatalogAccess(config: try global.load(), note: report)
                try BackupMetadata.setPinned(label: label, false, repository: access.repository, catalog: try? access.open(), log: { report($0) })
                print("backup \(label) unpinned")
            }
        }
    }
}

struct RestoreBackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore-backup",
        abstract: "Restore a base backup into an empty directory, verifying it against its manifest.",
        discussion: "This restores the files only; `walctl recover` also plans the WAL and writes the recovery settings."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The backup label (see `walctl backup list`).") var label: String
    @Option(name: .long, help: "Target data directory (empty or missing).") var pgdata: String
    @Flag(name: .long, help: "Restore into a non-empty directory, deleting what is there.") var force = false

    func run() throws {
        try runCommand {
            let access = try CatalogAccess(config: try global.load(), note: report)
            let r = try restoreBackup(label: label, repository: access.repository, pgdata: pgdata, force: force, log: { report($0) })
            print("restored backup \(r.label) into \(pgdata): \(r.files) files, \(r.bytes / 1048576) MiB, \(r.verifiedFiles) verified against the manifest, in \(String(format: "%.1f", r.seconds)) s")
        }
    }
}
