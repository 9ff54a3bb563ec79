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
            try AsyncPushDaemon(config: config, walDir: walDir, spoolRoot: spool, log: daemonLog).run()
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
            try PrefetchDaemon.make(config: config, spoolDir: spool, planPath: plan, log: daemonLog).run()
        }
    }
}

/// One timestamped line in the daemon's log (its stderr is the spool's daemon.log).
func daemonLog(_ message: String) {
    let ts = ISO8601DateFormatter().string(from: Date())
    FileHandle.standardError.write(Data("\(ts) walctl[\(getpid())]: \(message)\n".utf8))
}
