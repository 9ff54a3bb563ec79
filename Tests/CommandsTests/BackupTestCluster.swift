import Foundation
import TestSupport

/// The result of one child process.
struct SpawnResult {
    var status: Int32
    var output: String
    var succeeded: Bool { status == 0 }
}

/// Runs `argv` (as the postgres user when running as root and `asPostgres`) with posix_spawn and
/// waitpid, stdout and stderr together in `output`. Kept free of Foundation's Process, whose child
/// reaping stalled under XCTest here when a child left a daemon behind (pg_ctl start).
func spawn(_ argv: [String], asPostgres: Bool = true, input: String? = nil, timeout: TimeInterval = 600) throws -> SpawnResult {
    var args = argv
    if asPostgres && geteuid() == 0 { args = ["/usr/sbin/runuser", "-u", "postgres", "--"] + args }
    let dir = NSTemporaryDirectory() + "walctl-spawn-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let outPath = dir + "/out", inPath = dir + "/in"
    try (input ?? "").write(toFile: inPath, atomically: false, encoding: .utf8)
    chmod(dir, 0o755); chmod(inPath, 0o644)

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let cargs = args.map { strdup($0) } + [nil]
    defer { cargs.forEach { free($0) } }
    // Children start with no blocked signals and default handlers: a dispatch worker thread blocks
    // most signals, and pgbench -T needs SIGALRM.
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t(), all = sigset_t()
    sigemptyset(&empty); sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, args[0], &actions, &attr, cargs, environ)
    guard rc == 0 else { throw PostgresClusterError("posix_spawn \(args[0]) failed: errno \(rc)") }
    let deadline = Date().addingTimeInterval(timeout)
    var status: Int32 = 0
    while true {
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { break }
        if r < 0 && errno != EINTR { break }
        if Date() > deadline { kill(pid, SIGKILL); _ = waitpid(pid, &status, 0); status = 137 << 8; break }
        usleep(10_000)
    }
    let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let exited = status & 0x7f == 0
    return SpawnResult(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output: out)
}

/// A throwaway cluster for the backup tests: everything in one temporary directory owned by `postgres`,
/// Unix socket only.
final class BackupTestCluster {
    let bin: String
    let root: String
    let port: Int
    var dataDirectory: String { root + "/data" }
    var conninfo: String { "host=\(root) port=\(port) user=postgres dbname=postgres" }
    private(set) var running = false
    let owner: (uid_t, gid_t)?

    init(major: Int) throws {
        bin = PostgresBinaries.binDirectory(major: major)
        var template = Array("/tmp/walctl-bk-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw PostgresClusterError("mkdtemp failed") }
        root = String(cString: made)
        port = Int.random(in: 20000..<60000)
        if geteuid() == 0, let pw = getpwnam("postgres") { owner = (pw.pointee.pw_uid, pw.pointee.pw_gid) } else { owner = nil }
        chmod(root, 0o700)
        if let o = owner { chown(root, o.0, o.1) }
        let r = try spawn([bin + "/initdb", "-D", dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        guard r.succeeded else { throw PostgresClusterError("initdb failed: \(r.output)") }
    }

    func makeDirectory(_ name: String) throws -> String {
        let p = root + "/" + name
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        if let o = owner { chown(p, o.0, o.1) }
        return p
    }

    func chownToPostgres(_ path: String) { if let o = owner { chown(path, o.0, o.1) } }

    func start(settings: [String: String]) throws {
        var conf = "\nlisten_addresses = ''\nunix_socket_directories = '\(root)'\nport = \(port)\nfsync = off\ntimezone = 'UTC'\n"
        for (k, v) in settings.sorted(by: { $0.key < $1.key }) { conf += "\(k) = '\(v.replacingOccurrences(of: "'", with: "''"))'\n" }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        h.seekToEndOfFile(); h.write(Data(conf.utf8)); try h.close()
        let r = try spawn([bin + "/pg_ctl", "-D", dataDirectory, "-l", root + "/server.log", "-w", "-t", "120", "start"])
        guard r.succeeded else { throw PostgresClusterError("pg_ctl start: \(r.output) \((try? String(contentsOfFile: root + "/server.log", encoding: .utf8)) ?? "")") }
        running = true
    }

    @discardableResult
    func psql(_ sql: String, port p: Int? = nil) throws -> String {
        let r = try spawn([PostgresBinaries.binDirectory(major: 15) + "/psql", "-h", root, "-p", String(p ?? port), "-U", "postgres",
                           "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", "-"], input: sql)
        guard r.succeeded else { throw PostgresClusterError("psql: \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func cleanup() {
        if running { _ = try? spawn([bin + "/pg_ctl", "-D", dataDirectory, "-w", "-m", "immediate", "stop"]); running = false }
        try? FileManager.default.removeItem(atPath: root)
    }
}
