import ArgumentParser
import Commands
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Bind the repository to a cluster (system identifier, segment size, version).",
        discussion: "Safe to run again for the same cluster; a repository bound to another cluster is refused."
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The cluster's data directory (WALCTL_PGDATA).") var pgdata: String?

    func run() throws {
        try runCommand {
            var extra: [String: String] = [:]
            if let pgdata { extra["pgdata"] = pgdata }
            let config = try global.load(extra: extra)
            let dir = try config.require("pgdata")
            let identity = try ClusterIdentity.read(pgdata: dir)
            let info = try RepositoryInit.run(config: config, identity: identity)
            print("repository \(try config.require("repository")) bound to database system \(info.systemIdentifier) (PostgreSQL \(info.pgVersion), \(identity.segmentSize) segments)")
        }
    }
}
