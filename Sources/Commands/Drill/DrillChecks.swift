import Catalog
import Foundation

/// The drill server's own `psql`, over the private socket.
struct PSQL {
    var binary: String
    var socketDir: String
    var port: Int
    var user: String

    /// `psql -X -v ON_ERROR_STOP=1 -At` with `-c sql` or `-f file`, in `database`.
    func run(sql: String? = nil, file: String? = nil, database: String) throws -> ChildProcess.Output {
        var argv = [binary, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", socketDir, "-p", String(port), "-U", user, "-d", database]
        if let sql { argv += ["-c", sql] }
        if let file { argv += ["-f", file] }
        var env = ProcessInfo.processInfo.environment
        for k in ["PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PGHOSTADDR", "PGSSLMODE", "PGPASSFILE"] { env[k] = nil }
        env["PGCONNECT_TIMEOUT"] = "10"
        env["PGAPPNAME"] = "walctl drill"
        return try ChildProcess.run(argv, environment: env)
    }

    func query(_ sql: String, database: String = "postgres") throws -> [String] {
        let out = try run(sql: sql, database: database)
        guard out.succeeded else { throw WalctlError.postgres(Self.firstError(out)) }
        return out.stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    static func firstError(_ out: ChildProcess.Output) -> String {
        let lines = out.stderr.split(separator: "\n").map(String.init)
        return (lines.first { $0.contains("ERROR:") || $0.contains("FATAL:") } ?? lines.first ?? "psql exited \(out.status)")
            .trimmingCharacters(in: .whitespaces)
    }
}

/// The checks a drill runs once the server reached the target (docs/drills.md): amcheck on every
/// B-tree index, the databases against the backup's record, then each `--check-sql` file.
struct DrillChecks {
    var psql: PSQL
    var backup: BackupRecord

    /// A restored database smaller than this fraction of its size at the backup fails the check.
    static let minimumSizeRatio = 0.5

    func run(sqlFiles: [String]) -> [DrillCheck] {
        var out: [DrillCheck] = []
        let databases: [String]
        do {
            databases = try psql.query("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname")
        } catch {
            return [DrillCheck(name: "databases", status: "failed", detail: "cannot list the databases: \(error)", seconds: 0)]
        }
        out.append(timed("amcheck") { amcheck(databases) })
        out.append(timed("databases") { compareDatabases() })
        for f in sqlFiles { out.append(timed("sql:" + f) { sqlFile(f) }) }
        return out
    }

    func timed(_ name: String, _ body: () -> (String, String)) -> DrillCheck {
        let t = Date()
        let (status, detail) = body()
        return DrillCheck(name: name, status: status, detail: detail, seconds: Date().timeIntervalSince(t))
    }

    /// `bt_index_check` on every valid, permanent B-tree index of every database that accepts
    /// connections, after `CREATE EXTENSION IF NOT EXISTS amcheck` (the drill's server is thrown
    /// away). Skipped, with the reason, when the extension is not installed.
    func amcheck(_ databases: [String]) -> (String, String) {
        var indexes = 0
        var skipped: [String] = []
        for db in databases {
            do {
                _ = try psql.query("CREATE EXTENSION IF NOT EXISTS amcheck", database: db)
            } catch {
                skipped.append("\(db): \(error)")
                continue
            }
            do {
                let rows = try psql.query("""
                    SELECT count(*) FROM (SELECT bt_index_check(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                    JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisvalid AND i.indisready) s
                    """, database: db)
                indexes += Int(rows.first ?? "0") ?? 0
            } catch {
                return ("failed", "database \(db): \(error)")
            }
        }
        if indexes == 0 && !skipped.isEmpty {
            return ("skipped", "amcheck is not available in this server (install the contrib package): \(skipped.first ?? "")")
        }
        return ("passed", "bt_index_check on \(indexes) B-tree indexes in \(databases.count - skipped.count) databases" +
                (skipped.isEmpty ? "" : "; skipped \(skipped.count): \(skipped.joined(separator: "; "))"))
    }

    /// Each database of the backup's record must exist, at no less than `minimumSizeRatio` of its
    /// size then (growth after the backup is normal; a database half gone is not).
    func compareDatabases() -> (String, String) {
        guard let recorded = backup.databases, !recorded.isEmpty else {
            return ("skipped", "backup \(backup.label) has no record of its databases (taken by an older walctl)")
        }
        let rows: [String]
        do { rows = try psql.query("SELECT datname || '|' || pg_database_size(oid) FROM pg_database WHERE has_database_privilege(oid, 'CONNECT') ORDER BY 1") } catch {
            return ("failed", "cannot read the databases' sizes: \(error)")
        }
        var now: [String: Int64] = [:]
        for r in rows {
            guard let bar = r.lastIndex(of: "|") else { continue }
            now[String(r[..<bar])] = Int64(r[r.index(after: bar)...])
        }
        var problems: [String] = []
        var lines: [String] = []
        for d in recorded {
            guard let size = now[d.name] else { problems.append("database \(d.name) (in backup \(backup.label)) is missing"); continue }
            lines.append("\(d.name) \(size) bytes (backup: \(d.bytes))")
            if Double(size) < Double(d.bytes) * Self.minimumSizeRatio {
                problems.append("database \(d.name) is \(size) bytes, less than half its \(d.bytes) bytes at backup \(backup.label)")
            }
        }
        let added = Set(now.keys).subtracting(recorded.map(\.name)).sorted()
        if !added.isEmpty { lines.append("created after the backup: \(added.joined(separator: ", "))") }
        if !problems.isEmpty { return ("failed", problems.joined(separator: "; ")) }
        return ("passed", "\(recorded.count) databases as recorded: " + lines.joined(separator: ", "))
    }

    /// Runs a `--check-sql` file with psql (ON_ERROR_STOP, unaligned, tuples only). An error fails
    /// it; so does any output line that is exactly `f` or `false` (a statement returning false).
    func sqlFile(_ path: String) -> (String, String) {
        guard FileManager.default.isReadableFile(atPath: path) else { return ("failed", "cannot read \(path)") }
        let out: ChildProcess.Output
        do { out = try psql.run(file: path, database: "postgres") } catch { return ("failed", "\(error)") }
        guard out.succeeded else { return ("failed", PSQL.firstError(out)) }
        let lines = out.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        if let i = lines.firstIndex(where: { $0 == "f" || $0 == "false" }) {
            return ("failed", "result \(i + 1) of \(path) is false")
        }
        return ("passed", "\(lines.count) result lines, none false")
    }
}
