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


            """ + examples("walctl backup", "walctl backup --label before-upgrade --dbname 'host=/run/postgresql'", "walctl backup list"),
        subcommands: [Take.self, List.self, Show.self, Pin.self, Unpin.self],
        defaultSubcommand: Take.self
    )

    struct Take: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "take", abstract: "Take a base backup (the default).",
            usage: "walctl backup [take] [--dbname <conninfo>] [--label <label>] [--type full|incremental|incremental-or-full]\n  [--compress-where auto|server|client]\n  [--spread-checkpoint] [--max-rate <kB/s>] [--annotation <key=value> ...] [--no-progress]\n  [--config <file>] [--set <name=value> ...]",
            discussion: examples("walctl backup take", "walctl backup take --spread-checkpoint --compress-where client"))
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "libpq connection string or URI (default: the PG* environment).") var dbname: String = ""
        @Option(name: .long, help: "Backup label (default: from the start time).") var label: String?
        @Option(name: .long, help: "full, incremental (only what changed since the newest backup; refused when there is none) or incremental-or-full (default: the backup-type setting, full).") var type: String?
        @Option(name: .long, help: "Where to compress: auto (in the server for zstd on PostgreSQL 15+), server or client.") var compressWhere: String = "auto"
        @Flag(name: .long, help: "Spread the checkpoint instead of an immediate one.") var spreadCheckpoint = false
        @Option(name: .customLong("max-rate"), help: ArgumentHelp("Limit the server's transfer rate to this many kB/s (32 to 1048576), as pg_basebackup --max-rate.", valueName: "kB/s"))
        var maxRate: Int?
        @OptionGroup var progressOptions: ProgressOptions

        func validate() throws {
            if let r = maxRate, !(32...1_048_576).contains(r) { throw ValidationError("--max-rate must be from 32 to 1048576 (kB/s)") }
        }
        @Option(name: .long, help: ArgumentHelp("An annotation stored with the backup (repeatable); shown by backup show and backup list --json.", valueName: "key=value")) var annotation: [String] = []

        func run() throws {
            try runCommand {
                let config = try global.load()
                let access = try CatalogAccess(config: config, logger: config.interactiveLogger)
                var options = BackupOptions()
                options.label = label
                let typeText = (type ?? config[.backupType] ?? "full").lowercased()
                guard let requested = BackupTypeRequest(rawValue: typeText) else {
                    throw ValidationError("--type must be full, incremental or incremental-or-full, not \(typeText)")
                }
                options.type = requested
                options.pgdata = config[.pgdata]
                options.fastCheckpoint = !spreadCheckpoint
                options.maxRateKBps = maxRate
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
                let record = try takeBackup(connection: dbname, repository: access.repository, options: options, catalog: catalog, logger: access.logger,
                                              progress: try progressOptions.output(config))
                print("backup \(record.label) complete (\(record.type.rawValue)\(record.parent.map { " on \($0)" } ?? "")): \(record.startLSN) .. \(record.stopLSN) on timeline \(record.timeline), \(Human.bytes(record.size))\(record.storedSize.map { " (\(Human.bytes($0)) stored)" } ?? "")")
                if autoExpire {
                    do {
                        print(try Expire(config: config, logger: config.interactiveLogger).run().text)
                    } catch {
                        report("backup \(record.label) is complete, but expire-auto failed:")
                        throw error
                    }
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the backups in the repository.",
                                                        discussion: examples("walctl backup list", "walctl backup list --json"))
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print JSON: {formatVersion, backups: [label, startLSN, stopLSN, startTime, stopTime, timeline, size, storedSize, ...]} (docs/json.md).") var json = false

        func run() throws {
            try runCommand {
                let config = try global.load()
                let access = try CatalogAccess(config: config, logger: config.interactiveLogger)
                let backups = try BackupMetadata.list(repository: access.repository)
                if json { print(try JSONOutput.render(JSONDocuments.BackupList(backups: backups))); return }
                if backups.isEmpty { print("no backups in \(access.repository.url)"); return }
                for line in BackupText.table(backups) { print(line) }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one backup's record and contents.",
                                                        discussion: examples("walctl backup show 20261126-053012F"))
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The backup label.") var label: String
        @Flag(name: .long, help: "Print JSON: {formatVersion, backup, contents} (docs/json.md).") var json = false

        func run() throws {
            try runCommand {
                let config = try global.load()
                let access = try CatalogAccess(config: config, logger: config.interactiveLogger)
                var (record, contents) = try BackupMetadata.read(label: label, repository: access.repository)
                if try access.repository.store.head(key: BackupRecord.pinKey(label: label)) != nil { record.pinned = true }
                let all = record.type == .full ? [record] : try BackupMetadata.list(repository: access.repository)
                let chain = (try? BackupChain.chain(of: record, in: all)) ?? [record]
                if json {
                    print(try JSONOutput.render(JSONDocuments.BackupShow(backup: record, contents: contents, chain: chain)))
                } else {
                    print(BackupText.show(record, contents, chain: chain, broken: chain.first?.type != .full).joined(separator: "\n"))
                }
            }
        }
    }
}

extension BackupCommand {
    /// `backup pin` / `backup unpin`: one body for both.
    static func setPin(_ pinned: Bool, label: String, global: GlobalOptions) throws {
        try runCommand {
            let config = try global.load()
            let access = try CatalogAccess(config: config, logger: config.interactiveLogger)
            try BackupMetadata.setPinned(label: label, pinned, repository: access.repository, catalog: try? access.open(), logger: access.logger)
            print("backup \(label) \(pinned ? "pinned" : "unpinned")")
        }
    }

    struct Pin: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pin", abstract: "Pin a backup: expire never removes it or the WAL it needs to be consistent.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The backup label.") var label: String
        func run() throws { try setPin(true, label: label, global: global) }
    }

    struct Unpin: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unpin", abstract: "Unpin a backup: the retention settings decide again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The backup label.") var label: String
        func run() throws { try setPin(false, label: label, global: global) }
    }
}

struct RestoreBackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore-backup",
        abstract: "Restore a base backup into an empty directory, verifying it against its manifest.",
        usage: "walctl restore-backup <label> --pgdata <dir> [--force | --delta] [--tablespace-mapping <olddir=newdir> ...] [--no-progress] [--config <file>] [--set <name=value> ...]",
        discussion: "This restores the files only; `walctl recover` also plans the WAL and writes the recovery settings.\n\n"
            + examples("walctl restore-backup 20261126-053012F --pgdata /srv/restore", "walctl restore-backup 20261126-053012F --pgdata /srv/restore --force",
                       "walctl restore-backup 20261126-053012F --pgdata /srv/restore --tablespace-mapping /srv/pg/ts1=/srv/restore-ts1")
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The backup label (see `walctl backup list`).") var label: String
    @Option(name: .long, help: "Target data directory (empty or missing).") var pgdata: String
    @Flag(name: .long, help: "Restore into a non-empty directory, deleting what is there.") var force = false
    @Flag(name: .long, help: "Restore into the existing data directory of the same cluster (stopped): keep files whose size and CRC-32C match the backup, rewrite the others, remove files it does not have.") var delta = false
    @Option(name: .customLong("tablespace-mapping"), help: ArgumentHelp("Restore the tablespace the server had at OLDDIR into NEWDIR (repeatable).", valueName: "olddir=newdir"))
    var tablespaceMapping: [String] = []
    @OptionGroup var progressOptions: ProgressOptions

    func run() throws {
        try runCommand {
            guard !(force && delta) else { throw ValidationError("--force and --delta exclude each other") }
            var options = RestoreOptions()
            options.delta = delta
            options.tablespaceMapping = try RestoreOptions.tablespaceMapping(tablespaceMapping)
            let config = try global.load()
            let access = try CatalogAccess(config: config, logger: config.interactiveLogger)
            let r = try restoreBackup(label: label, repository: access.repository, pgdata: pgdata, force: force, options: options, logger: access.logger,
                                      progress: try progressOptions.output(config))
            let chain = r.chain.count > 1 ? " (chain \(r.chain.joined(separator: " -> ")))" : ""
            let inPlace = r.unchangedBytes + r.rewrittenBytes > 0
                ? " (in place: \(Human.bytes(r.rewrittenBytes)) rewritten, \(Human.bytes(r.unchangedBytes)) already right)" : ""
            let kept = delta ? ", \(r.keptFiles) kept, \(r.removedFiles) removed\(inPlace)" : ""
            print("restored backup \(r.label)\(chain) into \(pgdata): \(Human.count(r.files, "file")) written, \(Human.bytes(r.bytes))\(kept), \(r.verifiedFiles) verified against the manifest, in \(Human.duration(r.seconds))")
        }
    }
}

/// The human `backup list` and `backup show`.
enum BackupText {
    static func table(_ backups: [BackupRecord]) -> [String] {
        Human.table(["LABEL", "TYPE", "PARENT", "STATUS", "TL", "START LSN", "STOP LSN", "STARTED", "STOPPED", "SIZE", "STORED"],
                    backups.map { b in
                        [b.label, b.type.rawValue, b.parent ?? "-", b.status.rawValue + (b.pinned == true ? ", pinned" : ""), "\(b.timeline)", b.startLSN.description, b.stopLSN.description,
                         b.startTime.iso8601, b.stopTime.iso8601, Human.bytes(b.size), b.storedSize.map { Human.bytes($0) } ?? "-"]
                    },
                    align: [.left, .left, .left, .left, .right, .left, .left, .left, .left, .right, .right])
    }

    static func show(_ b: BackupRecord, _ c: BackupContents, chain: [BackupRecord], broken: Bool) -> [String] {
        let chainStored = chain.reduce(Int64(0)) { $0 + ($1.storedSize ?? 0) }
        var out = [
            "backup \(b.label): \(b.status.rawValue)",
            "  type:        \(b.type.rawValue)\(b.parent.map { " on \($0)\(c.incrementalMethod.map { ", \($0)-level" } ?? "")" } ?? "")",
            "  chain:       \(chain.map(\.label).joined(separator: " -> "))\(broken ? " (BROKEN: a member is missing)" : "")",
            "  adds:        \(Human.bytes(b.storedSize ?? 0)) stored of the chain's \(Human.bytes(chainStored))",
            "  timeline:    \(b.timeline)\(b.stopTimeline.map { " (stopped on \($0))" } ?? "")",
            "  WAL:         \(b.startLSN) .. \(b.stopLSN) (segments \(c.firstWALSegment) .. \(c.lastWALSegment))",
            "  time:        \(b.startTime.iso8601) .. \(b.stopTime.iso8601)",
            "  size:        \(Human.bytes(b.size))\(b.storedSize.map { ", \(Human.bytes($0)) stored" } ?? ""), compression \(c.compression)",
            "  PostgreSQL:  \(c.serverVersionNum), system \(b.systemIdentifier)",
            "  manifest:    \(c.manifestObject.map { "\($0) (\(c.manifestChecksumAlgorithm ?? "?") checksums)" } ?? "none")",
        ]
        if b.pinned == true { out.append("  pinned:      yes (walctl backup unpin \(b.label) to release it)") }
        for (k, v) in (b.annotations ?? [:]).sorted(by: { $0.key < $1.key }) { out.append("  annotation:  \(k)=\(v)") }
        out += Human.table(["OBJECT", "CODEC", "BY", "TABLESPACE", "STORED", "CRC32C"],
                           c.archives.map { a in
                               [a.object, a.codec, a.compressedBy, a.tablespaceLocation ?? "(data directory)", Human.bytes(a.storedSize), a.storedCRC32C]
                           }, align: [.left, .left, .left, .left, .right, .left]).map { "  " + $0 }
        return out
    }
}
