import ArgumentParser
import Commands
import Foundation

/// Hidden: the background pusher `walctl archive-push` starts when `archive-async = true`
/// (docs/async.md). It pushes every ready file, then exits when idle; a second one exits at once.
struct ArchivePushAsyncDaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "archive-push-async-daemon", abstract: "(internal) background pusher", shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("wal-dir"), help: "The cluster's pg_wal directory.") var walDir: String
    @Option(name: .long, help: "The spool directory.") var spool: String

    func run() throws {
        try runCommand {
            let config = try global.load()
            let archiveSpool = ArchiveSpool(root: spool)
            try archiveSpool.prepare()
            try AsyncPushDaemon(config: config, walDir: walDir, spoolRoot: spool,
                                logger: try WalctlLog.daemon(level: config.logLevel, logPath: archiveSpool.logPath)).run()
        }
    }
}

/// Hidden: the background prefetcher `walctl archive-get` starts when `restore-prefetch` > 0.
struct ArchiveGetPrefetchDaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "archive-get-prefetch-daemon", abstract: "(internal) background prefetcher", shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The prefetch spool directory.") var spool: String
    @Option(name: .long, help: "walctl recover's saved plan: prefetch no further than its range.") var plan: String?

    func run() throws {
        try runCommand {
            let config = try global.load()
            let prefetchSpool = PrefetchSpool(dir: spool)
            try prefetchSpool.prepare()
            try PrefetchDaemon.make(config: config, spoolDir: spool, planPath: plan,
                                    logger: try WalctlLog.daemon(level: config.logLevel, logPath: prefetchSpool.logPath)).run()
        }
    }
}
