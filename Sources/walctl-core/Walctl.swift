import ArgumentParser
import Commands
import FastPath
import Foundation

/// walctl: PostgreSQL WAL archiving and point-in-time recovery.
@main
struct Walctl: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "walctl",
        abstract: "PostgreSQL WAL archive manager and point-in-time recovery.",
        discussion: """
            Settings come from the config file (--config, WALCTL_CONFIG, or \(Settings.defaultConfigPath)), \
            then WALCTL_* environment variables, then flags; the later wins. `walctl config` shows them.
            """,
        version: version,
        subcommands: [
            ArchivePushCommand.self, ArchiveGetCommand.self, InitCommand.self, CheckCommand.self,
            InfoCommand.self, VerifyCommand.self, BackupCommand.self, RestoreBackupCommand.self, RecoverCommand.self, DrillCommand.self,
            CatalogCommand.self, WalCommand.self, ConfigCommand.self, VersionCommand.self, MetricsCommand.self, ExpireCommand.self,
            ArchivePushAsyncDaemonCommand.self, ArchiveGetPrefetchDaemonCommand.self,
            DecryptCommand.self, RepositoryCommand.self,
        ]
    )

    /// Options whose value may start with `-` (a UTC offset west of Greenwich): `--time-zone -05:00`
    /// is rewritten to `--time-zone=-05:00` before parsing, so the value is not read as an option.
    static let negativeValueOptions: Set<String> = ["--time-zone", "--to"]

    static func preprocess(_ args: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if negativeValueOptions.contains(a), i + 1 < args.count, args[i + 1].hasPrefix("-"), args[i + 1].count > 1,
               let second = args[i + 1].dropFirst().first, second.isNumber {
                out.append(a + "=" + args[i + 1])
                i += 2
                continue
            }
            out.append(a)
            i += 1
        }
        return out
    }

    /// ArgumentParser's entry point, with two differences: negative offsets as option values
    /// (`preprocess`), and archive-get's command-line mistakes exit 255 with one
    /// `walctl: error [usage]: ...` line (exit 64, like 1, would let PostgreSQL end recovery).
    ///
    /// archive-push and archive-get run once per WAL file. Parsed through the root command,
    /// ArgumentParser builds and type-checks the whole command tree first: ~18 M instructions of
    /// Swift runtime type lookups, a fifth of a 16 MiB archive-get (docs/benchmarks.md, "Per-call
    /// overhead"). The shapes PostgreSQL runs (`--config`, `--set NAME=VALUE`, `--progress-file`,
    /// the positionals: FastFront's grammar) skip ArgumentParser: the commands' bodies are called
    /// with the values FastFront parsed. Everything else goes through the root.
    static func main() {
        // The front's hand-over mark: which front this call came through (the commands written for
        // PostgreSQL name it), removed so that children (PostgreSQL started by drill, the async
        // daemons) run fronts afresh.
        FrontMain.takeHandOff()
        let raw = CommandLine.arguments
        // No argv at all: the Swift runtime reads it from /proc/self/cmdline (a chroot without /proc).
        // Never print the help and exit 0: for archive-get that would read as "restored".
        guard !raw.isEmpty else {
            report("error [file-io]: cannot read this process's command line (/proc/self/cmdline): is /proc mounted?")
            Foundation.exit(255)
        }
        let args = preprocess(Array(raw.dropFirst()))
        let isGet = args.first == "archive-get"
        func fail(_ error: Error) -> Never {
            if isGet, exitCode(for: error) != .success, !(error is ExitCode) {
                let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid command line"
                report("error [usage]: archive-get: \(text)")
                Foundation.exit(255)
            }
            exit(withError: error)
        }
        if let inv = FastFront.Invocation.parse(raw), inv.sets.allSatisfy({ kv in kv.firstIndex(of: "=").map { $0 != kv.startIndex } ?? false }) {
            let load = { try GlobalOptions.load(config: inv.config, sets: inv.sets) }
            do {
                if inv.command == "archive-get" {
                    try ArchiveGetCommand.run(load: load, walFile: inv.positionals[0], path: inv.positionals[1], progressFile: inv.progressFile)
                } else {
                    try ArchivePushCommand.run(load: load, path: inv.positionals[0])
                }
            } catch let code as ExitCode {
                Foundation.exit(code.rawValue)
            } catch {
                fail(error)
            }
            Foundation.exit(0)
        }
        var command: ParsableCommand
        do { command = try parseAsRoot(args) } catch { fail(error) }
        do { try command.run() } catch { fail(error) }
        Foundation.exit(0)
    }
}

/// The "Examples:" block that ends every subcommand's help (and so its section of the man page).
func examples(_ lines: String...) -> String {
    "Examples:\n" + lines.map { "  " + $0 }.joined(separator: "\n")
}

/// Options every command that touches the repository accepts.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Config file (default: WALCTL_CONFIG, then \(Settings.defaultConfigPath)).")
    var config: String?
    @Option(name: .long, help: "Repository URL: file:///path or s3://bucket/prefix (WALCTL_REPOSITORY).")
    var repository: String?
    @Option(name: .long, help: "Catalog path (WALCTL_CATALOG).")
    var catalog: String?
    @Option(name: .customLong("compress-type"), help: "zstd (default), gzip or none.")
    var compressType: String?
    @Option(name: .customLong("compress-level"), help: "Compression level.")
    var compressLevel: String?
    @Option(name: .customLong("log-level"), help: "error, warning, info or debug.")
    var logLevel: String?
    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Same as --log-level debug: each repository request and decision.")
    var verbose = false
    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Same as --log-level error: errors only.")
    var quiet = false
    @Option(name: .customLong("set"), help: ArgumentHelp("Any setting, as NAME=VALUE (repeatable).", valueName: "name=value"))
    var set: [String] = []

    /// The resolved configuration: file, environment, then these flags.
    func load(extra: [String: String] = [:]) throws -> Configuration {
        var named: [String: String] = [:]
        var sources: [String: String] = [:]
        if let repository { named["repository"] = repository; sources["repository"] = "--repository" }
        if let catalog { named["catalog"] = catalog; sources["catalog"] = "--catalog" }
        if let compressType { named["compress-type"] = compressType; sources["compress-type"] = "--compress-type" }
        if let compressLevel { named["compress-level"] = compressLevel; sources["compress-level"] = "--compress-level" }
        if let logLevel { named["log-level"] = logLevel; sources["log-level"] = "--log-level" }
        if verbose { named["log-level"] = "debug"; sources["log-level"] = "-v" }
        if quiet { named["log-level"] = "error"; sources["log-level"] = "-q" }
        return try Self.load(config: config, sets: set, extra: extra, named: named, namedSources: sources)
    }

    /// The one resolution of the command line's settings over the file and the environment:
    /// `extra` (the command's own), then each `--set NAME=VALUE`, then the named flags; the later wins.
    static func load(config: String?, sets: [String], extra: [String: String] = [:],
                     named: [String: String] = [:], namedSources: [String: String] = [:]) throws -> Configuration {
        var flags = extra
        var sources: [String: String] = [:]
        for kv in sets {
            guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else {
                throw Failure(error: WalctlError.configuration(.invalidValue(name: "--set", value: kv, expected: "NAME=VALUE", source: "command line")), exitCode: 1)
            }
            flags[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
            sources[String(kv[..<eq])] = "--set " + kv[..<eq]
        }
        flags.merge(named) { _, flag in flag }
        sources.merge(namedSources) { _, flag in flag }
        do {
            return try Configuration.load(flags: flags, environment: ProcessInfo.processInfo.environment, configPath: config, flagSources: sources)
        } catch {
            throw Failure(error: WalctlError.configuration(error), exitCode: 1)
        }
    }
}

/// `--no-progress`, for the commands that show progress (backup, restore-backup, recover, catalog
/// rebuild, verify): never part of GlobalOptions, so archive-push/get do not take it.
struct ProgressOptions: ParsableArguments {
    @Flag(name: .customLong("no-progress"), help: "Show no progress line (default: a live line on a terminal, else a line every progress-interval seconds on stderr).")
    var noProgress = false

    func output(_ config: Configuration) throws -> ProgressOutput {
        do { return try ProgressOutput.standardError(config: config, enabled: !noProgress) } catch {
            throw Failure(error: WalctlError.configuration(error), exitCode: 1)
        }
    }
}

/// A failure with the exit code the command contract asks for; printed as one line on stderr.
struct Failure: Error {
    var error: Error
    var exitCode: Int32
}

/// Writes one line to stderr (PostgreSQL copies archive/restore command stderr into its log).
func report(_ message: String) {
    ProgressOutput.clearLiveLine()
    FileHandle.standardError.write(Data(("walctl: " + message + "\n").utf8))
}

/// Runs `body`, turning every error into one stderr line and `exitCode`.
func runCommand(exitCode: Int32 = 1, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let f as Failure {
        describe(f.error)
        throw ExitCode(f.exitCode)
    } catch let e as ExitCode {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch {
        describe(error)
        throw ExitCode(exitCode)
    }
}

func describe(_ error: Error) {
    if let c = error as? ConfigurationError {
        describe(WalctlError.configuration(c))
    } else if let w = WalctlError.from(error) {
        report("error [\(w.code)]: \(w)")
    } else {
        report("error: \(error)")
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print walctl's version.",
                                                    discussion: examples("walctl version", "walctl --version"))
    func run() { print("walctl \(Walctl.version)") }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Show every setting, its value and where it came from (secrets masked).",
                                                    discussion: examples("walctl config", "walctl config --config /etc/walctl/walctl.conf --set log-level=debug",
                                                                         "walctl config --reference > docs/configuration.md"))
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print the reference table of every setting (Markdown) and exit.") var reference = false
    @Flag(name: .long, help: "One JSON document (docs/json.md): settings and the credentials' source.") var json = false
    func run() throws {
        if reference {
            print("| setting | environment | default | allowed values | meaning |\n|---|---|---|---|---|")
            for d in Settings.all {
                print("| `\(d.name)` | `\(d.environmentName)` | \(d.defaultValue.map { "`\($0)`" } ?? "") | \(d.type.allowed) | \(d.help) |")
            }
            return
        }
        try runCommand {
            let c = try global.load()
            if json { print(try JSONOutput.render(ConfigReport.document(c))); return }
            if let f = c.configFile { print("# config file: \(f)") } else { print("# no config file") }
            for s in c.describe() { print("\(s.name) = \(s.value)    # \(s.source)") }
            if let cred = ConfigReport.credentials(c) { print("# credentials: \(cred.summary)") }
        }
    }
}
