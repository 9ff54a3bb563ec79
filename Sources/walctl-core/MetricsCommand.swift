import ArgumentParser
import Commands
import Foundation

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the archive's health as Prometheus metrics, or serve them on /metrics.",
        usage: "walctl metrics [--pgdata <dir>] [--listen [<host>:]<port>] [--config <file>] [--set <name=value> ...]",
        discussion: """
            Reads the catalog, the repository's newest listing (as walctl info), pg_wal/archive_status \
            of --pgdata (the archive backlog; run as the cluster's owner) and the async spool. Every \
            metric is documented in docs/metrics.md. An unreachable repository is reported as \
            walctl_repository_up 0, not as a failure.


            """ + examples("walctl metrics --pgdata /var/lib/postgresql/15/main > /tmp/walctl.prom",
                           "walctl metrics --listen 127.0.0.1:9188 --pgdata /var/lib/postgresql/15/main",
                           "curl -s http://127.0.0.1:9188/metrics")
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The cluster's data directory, for the archive backlog (WALCTL_PGDATA).") var pgdata: String?
    @Option(name: .long, help: ArgumentHelp("Serve the metrics over HTTP on /metrics at this address instead of printing them once: PORT (127.0.0.1), HOST:PORT or [IPv6]:PORT. An address other than loopback serves them to the network, unauthenticated.", valueName: "[host:]port"))
    var listen: String?

    func run() throws {
        try runCommand {
            var extra: [String: String] = [:]
            if let pgdata { extra["pgdata"] = pgdata }
            let config = try global.load(extra: extra)
            let report = MetricsReport(config: config, version: Walctl.version, logger: config.interactiveLogger)
            guard let listen else {
                print(report.render(), terminator: "")
                return
            }
            guard let address = MetricsListenAddress(listen) else {
                throw ValidationError("--listen expects PORT, HOST:PORT or [IPv6]:PORT with a numeric address, got \(listen)")
            }
            if !address.isLoopback {
                walctlReport("WARNING: serving metrics on \(address), which is not a loopback address: anyone who can reach it can read them (no authentication, no TLS)")
            }
            let server = try MetricsServer(address: address)
            walctlReport("serving metrics on http://\(address)/metrics")
            server.serve { report.render() }
        }
    }
}

private func walctlReport(_ line: String) { report(line) }
