import ArgumentParser
import Commands
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Bind the repository to a cluster (system identifier, segment size, version).",
        discussion: "Safe to run again for the same cluster; a repository bound to another cluster is refused.\n\n"
            + examples("walctl init --pgdata /var/lib/postgresql/15/main",
                       "walctl init --repository s3://backups/prod --dbname 'host=/run/postgresql'")
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The cluster's data directory (WALCTL_PGDATA); without it, walctl asks the running server.") var pgdata: String?
    @Option(name: .long, help: "libpq connection string, used when no data directory is given (default: the PG* environment).") var dbname: String = ""

    func run() throws {
        try runCommand {
            var extra: [String: String] = [:]
            if let pgdata { extra["pgdata"] = pgdata }
            let config = try global.load(extra: extra)
            let identity = try config[.pgdata].map { try ClusterIdentity.read(pgdata: $0) } ?? ArchiveCheck.identity(conninfo: dbname)
            let info = try RepositoryInit.run(config: config, identity: identity)
            // Create the catalog now, complete (rebuilt from what the repository already holds), so
            // archive-push keeps it complete from the first segment on.
            if config[.catalog] != nil {
                do { _ = try CatalogAccess(config: config).open() } catch {
                    report("warning: catalog \(config[.catalog] ?? ""): \(error) (archiving works without it; `walctl catalog rebuild` creates it later)")
                }
            }
            print("repository \(try config.require(.repository)) bound to database system \(info.systemIdentifier) (PostgreSQL \(info.pgVersion), \(identity.segmentSize) segments)")
        }
    }
}
