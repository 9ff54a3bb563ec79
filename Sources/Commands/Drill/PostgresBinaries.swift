import Foundation

/// The PostgreSQL server binaries a drill runs: `postgres` and `psql` of the backup's major version.
public struct PostgresBinaries: Equatable, Sendable {
    public var bindir: String
    public var major: Int
    public var postgres: String { bindir + "/postgres" }
    public var psql: String { bindir + "/psql" }

    /// Finds the binaries for `major`, in this order: the `pg-bin` setting (it must hold that
    /// version: a wrong one is an error, not a reason to look elsewhere), `pg_config --bindir` (the
    /// first `pg_config` on PATH) when its major version matches, then `/usr/lib/postgresql/N/bin`
    /// (Debian, Ubuntu) and `/usr/pgsql-N/bin` (PGDG RPMs).
    ///
    /// - Throws: `WalctlError.serverBinariesMissing` naming every place looked at.
    public static func find(major: Int, pgBin: String?, path: String = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") throws -> PostgresBinaries {
        var looked: [String] = []
        if let dir = pgBin, !dir.isEmpty {
            let v = version(of: dir)
            if v == major { return PostgresBinaries(bindir: dir, major: major) }
            throw WalctlError.serverBinariesMissing(
                "pg-bin = \(dir) " + (v.map { "holds PostgreSQL \($0)" } ?? "has no runnable postgres") +
                    ", but the backup is PostgreSQL \(major): set pg-bin to the bin directory of PostgreSQL \(major)")
        }
        for p in path.split(separator: ":") where !p.isEmpty {
            let pgConfig = String(p) + "/pg_config"
            guard FileManager.default.isExecutableFile(atPath: pgConfig) else { continue }
            if let out = try? ChildProcess.run([pgConfig, "--bindir"]), out.succeeded {
                let dir = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let v = version(of: dir)
                if v == major { return PostgresBinaries(bindir: dir, major: major) }
                looked.append("\(dir) (pg_config --bindir\(v.map { ": PostgreSQL \($0)" } ?? ""))")
            }
            break
        }
        for dir in ["/usr/lib/postgresql/\(major)/bin", "/usr/pgsql-\(major)/bin"] {
            if version(of: dir) == major { return PostgresBinaries(bindir: dir, major: major) }
            looked.append(dir)
        }
        throw WalctlError.serverBinariesMissing(
            "no PostgreSQL \(major) server found (looked at \(looked.joined(separator: ", "))): install PostgreSQL \(major) (postgresql-\(major)) or set pg-bin to its bin directory")
    }

    /// The major version `DIR/postgres --version` prints, nil when it does not run; 9.6 is 9.
    static func version(of dir: String) -> Int? {
        let exe = dir + "/postgres"
        guard FileManager.default.isExecutableFile(atPath: exe), FileManager.default.isExecutableFile(atPath: dir + "/psql"),
              let out = try? ChildProcess.run([exe, "--version"]), out.succeeded else { return nil }
        // "postgres (PostgreSQL) 15.4 (Debian 15.4-1)"
        guard let r = out.stdout.range(of: ") ") else { return nil }
        let digits = out.stdout[r.upperBound...].prefix { $0.isNumber }
        return Int(digits)
    }
}
