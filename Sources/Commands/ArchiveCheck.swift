import Foundation
import Storage
import PGClient
import WALFormat

/// `walctl check`: proves the archive path end to end on a running cluster: the server's system
/// matches the repository, archive_mode is on, and a freshly switched segment arrives in the
/// repository within `archive-check-timeout` seconds (as `pgbackrest check` does).
public struct ArchiveCheck {
    public var config: Configuration
    public var conninfo: String
    public init(config: Configuration, conninfo: String) { self.config = config; self.conninfo = conninfo }

    public struct Result { public var segment: String; public var seconds: Double }

    public func run() throws -> Result {
        let repository = try RepositoryFactory.open(config)
        guard let info = try repository.info() else { throw WalctlError.notInitialised(repository: repository.url) }
        do {
            let pg = try PGConnection(conninfo: conninfo)
            let sysid = try pg.query("SELECT system_identifier FROM pg_control_system()").rows.first?.first ?? nil
            guard sysid == info.systemIdentifier else {
                throw WalctlError.refused("the server at \(pg.target) is database system \(sysid ?? "?"), the repository \(repository.url) is bound to \(info.systemIdentifier)")
            }
            let mode = try pg.show("archive_mode")
            guard mode == "on" || mode == "always" else {
                throw WalctlError.refused("archive_mode is \(mode) on \(pg.target): set archive_mode = on and restart PostgreSQL")
            }
            let command = try pg.show("archive_command")
            if !command.contains("walctl") {
                throw WalctlError.refused("archive_command on \(pg.target) is '\(command)': set it to 'walctl archive-push %p'")
            }
            // A restore point guarantees the switch closes a segment with something in it.
            _ = try pg.query("SELECT pg_create_restore_point('walctl archive check')")
            guard let name = try pg.query("SELECT pg_walfile_name(pg_switch_wal())").rows.first?.first ?? nil,
                  let file = WALFileName(name) else {
                throw WalctlError.postgres("pg_switch_wal() returned no segment name")
            }
            let timeout = Double(try config.int(.archiveCheckTimeout) ?? 60)
            let start = Date()
            while Date().timeIntervalSince(start) < timeout {
                if try repository.meta(for: file) != nil { return Result(segment: name, seconds: Date().timeIntervalSince(start)) }
                Thread.sleep(forTimeInterval: 0.1)
            }
            let failure = try? pg.query("SELECT last_failed_wal, last_failed_time FROM pg_stat_archiver").rows.first
            throw WalctlError.timeout("segment \(name) did not reach \(repository.url) within \(Int(timeout)) s; last archive failure: \((failure?.compactMap { $0 } ?? []).joined(separator: " at ")). Check the PostgreSQL log for walctl's message")
        } catch let e as PGError {
            throw WalctlError.postgres(e.description)
        } catch let e as StoreError {
            throw WalctlError.store(e)
        }
    }

    /// The cluster identity over libpq (for `walctl init` without `--pgdata`).
    public static func identity(conninfo: String) throws -> ClusterIdentity {
        do {
            let pg = try PGConnection(conninfo: conninfo)
            guard let s = try pg.query("SELECT system_identifier FROM pg_control_system()").rows.first?.first ?? nil,
                  let sysid = UInt64(s) else { throw WalctlError.postgres("pg_control_system() returned nothing") }
            guard let size = WALSegmentSize(bytes: try pg.walSegmentSize()) else { throw WalctlError.postgres("invalid wal_segment_size") }
            return ClusterIdentity(systemIdentifier: sysid, segmentSize: size, pgVersion: pg.serverMajorVersion)
        } catch let e as PGError {
            throw WalctlError.postgres(e.description)
        }
    }
}
