import XCTest
import Foundation
@testable import FastPath
import Commands
import Storage
import WALFormat
import Codec

/// `PushRecord`'s encoded shape (its memberwise init is internal to Commands).
struct PushRecordShape: Codable {
    var repository: String
    var sourceSize: Int64
    var sourceMTimeNs: Int64
    var meta: ArchivedFileMeta
    var alreadyArchived: Bool
}

/// The fast front's decisions against real spool files written with walctl's own encoders.
final class FastFrontTests: XCTestCase {
    var tmp = ""
    let seg = "000000010000000000000005"
    let boot = "11111111-2222-3333-4444-555555555555"

    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "walctl-fast-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: tmp + "/empty.conf", contents: Data())
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    func env(_ vars: [String: String] = [:], boot: String? = nil) -> FastFront.Environment {
        var v = vars
        if v["WALCTL_CONFIG"] == nil { v["WALCTL_CONFIG"] = tmp + "/empty.conf" }
        return FastFront.Environment(variable: { v[$0] }, cwd: tmp, bootID: boot ?? self.boot)
    }

    func write(_ path: String, _ bytes: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func encode<T: Encodable>(_ v: T) throws -> [UInt8] {
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        return Array(try e.encode(v))
    }

    func meta(crc: UInt32 = 0x1234abcd) -> ArchivedFileMeta {
        ArchivedFileMeta(name: seg, size: 16, storedSize: 10, codec: "zstd", crc32c: crc, archivedAt: PGTimestamp(unixSeconds: 1_700_000_000), summary: nil)
    }

    // MARK: configuration

    func testSettingNamesMatchTheFullBinary() {
        XCTAssertEqual(knownSettingNames, Settings.all.map(\.name))
        for d in Settings.all { XCTAssertEqual(environmentName(d.name), d.environmentName) }
    }

    /// FastConfig and Configuration read the same files alike (inline comments, quotes) and refuse
    /// the same values; where the full binary refuses, the front falls back (nil).
    func testFastConfigAgreesWithTheFullBinary() throws {
        let files = [
            "repository = file:///r   # my repo\nrestore-prefetch = 4\t# four\n",
            "repository = \"file:///r #x\"  # quoted\n",
            "s3-key = ab#cd\nrepository = /r\n",
            "log-level = verbose\n", "archive-get-on-error = ignore\n", "archive-workers = -1\n", "archive-workers = 0\n",
            "archive-push-timeout = -5\n", "s3-part-size = 0\n", "archive-spool-max = 99999999999999999999\n",
            "repository = s3://bucket/../../etc\n", "s3-endpoint = http://198.51.100.7\n",
            "s3-endpoint = http://198.51.100.7 # ok with\ns3-allow-http = yes\n", "compress-type = gzip\ncompress-level = 12\n",
            "restore-prefetch = +3\n", "repository = \"file:///r\n", "archive-get-retry-time = 60 # seconds\n",
        ]
        for (i, text) in files.enumerated() {
            let path = tmp + "/agree\(i).conf"
            try write(path, Array(text.utf8))
            let fast = FastConfig.load(configFlag: path, sets: [], environment: { _ in nil })
            let full = try? Configuration.load(flags: [:], environment: [:], configPath: path)
            XCTAssertEqual(fast == nil, full == nil, "\(text): fast \(String(describing: fast)), full \(full.map { "\($0.values)" } ?? "refused")")
            if let fast, let full {
                for name in knownSettingNames where full.sources[name] != "default" { XCTAssertEqual(fast[name], full.values[name].flatMap { $0.isEmpty ? nil : $0 }, "\(text): \(name)") }
            }
        }
        // --set values and the environment are validated alike.
        XCTAssertNil(FastConfig.load(configFlag: tmp + "/empty.conf", sets: ["log-level=verbose"], environment: { _ in nil }))
        XCTAssertNil(FastConfig.load(configFlag: tmp + "/empty.conf", sets: [], environment: { $0 == "WALCTL_ARCHIVE_WORKERS" ? "0" : nil }))
    }

    func testConfigLayersAndRejections() throws {
        try write(tmp + "/a.conf", Array("# c\n[main]\nrepository = \"file:///r\"\nrestore-prefetch=4\n".utf8))
        let c = FastConfig.load(configFlag: tmp + "/a.conf", sets: ["restore-prefetch=8"], environment: { $0 == "WALCTL_ARCHIVE_ASYNC" ? "on" : nil })
        XCTAssertEqual(c?["repository"], "file:///r")
        XCTAssertEqual(c?.integer("restore-prefetch"), .value(8))
        XCTAssertEqual(c?.bool("archive-async"), true)
        // Unknown setting, bad line, missing explicit file, bad --set: the full binary decides.
        try write(tmp + "/b.conf", Array("nosuch = 1\n".utf8))
        XCTAssertNil(FastConfig.load(configFlag: tmp + "/b.conf", sets: [], environment: { _ in nil }))
        try write(tmp + "/c.conf", Array("repository\n".utf8))
        XCTAssertNil(FastConfig.load(configFlag: tmp + "/c.conf", sets: [], environment: { _ in nil }))
        XCTAssertNil(FastConfig.load(configFlag: tmp + "/missing.conf", sets: [], environment: { _ in nil }))
        XCTAssertNil(FastConfig.load(configFlag: nil, sets: ["=x"], environment: { _ in self.tmp + "/none" }))
        XCTAssertEqual(FastConfig(values: ["restore-prefetch": "+3"]).integer("restore-prefetch"), .undecided)
        XCTAssertNil(FastConfig(values: ["archive-async": "maybe"]).bool("archive-async"))
    }

    func testInvocationParsing() {
        XCTAssertEqual(FastFront.Invocation.parse(["w", "archive-get", "--progress-file", "p", "--config", "c", "--set", "a=b", "F", "P"])?.positionals, ["F", "P"])
        XCTAssertNil(FastFront.Invocation.parse(["w", "archive-get", "--cleanup"]))
        XCTAssertNil(FastFront.Invocation.parse(["w", "archive-get", "F"]))
        XCTAssertNil(FastFront.Invocation.parse(["w", "archive-push", "--repository", "x", "P"]))
        XCTAssertNil(FastFront.Invocation.parse(["w", "archive-push", "--config=c", "P"]))
        XCTAssertNil(FastFront.Invocation.parse(["w", "info"]))
    }

    // MARK: archive-push

    func pushSetup(alreadyArchived: Bool = false) throws -> (okPath: String, env: FastFront.Environment) {
        try write(tmp + "/pg_wal/" + seg, Array(repeating: 7, count: 16))
        try FileManager.default.createDirectory(atPath: tmp + "/walctl_spool/archive/skipped", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tmp + "/pg_wal/archive_status", withIntermediateDirectories: true)
        try write(tmp + "/pg_wal/archive_status/" + seg + ".ready", [])
        var st = stat()
        XCTAssertEqual(lstat(tmp + "/pg_wal/" + seg, &st), 0)
        let rec = PushRecordShape(repository: "file:///repo", sourceSize: 16,
                             sourceMTimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec), meta: meta(), alreadyArchived: alreadyArchived)
        let ok = tmp + "/walctl_spool/archive/" + seg + ".ok"
        try write(ok, try encode(rec))
        return (ok, env(["WALCTL_ARCHIVE_ASYNC": "true", "WALCTL_REPOSITORY": "file:///repo"]))
    }

    func testPushServesAMatchingOK() throws {
        let (ok, e) = try pushSetup()
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .exit(0))
        XCTAssertFalse(FileManager.default.fileExists(atPath: ok))
    }

    func testPushFallsBackOnMismatchValveOrAlreadyArchived() throws {
        let (ok, e) = try pushSetup()
        var other = e
        other.variable = { $0 == "WALCTL_REPOSITORY" ? "file:///other" : e.variable($0) }
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: other), .fallBack)
        var valve = e
        valve.variable = { $0 == "WALCTL_ARCHIVE_PUSH_MAX_AGE" ? "60" : e.variable($0) }
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: valve), .fallBack)
        var sync = e
        sync.variable = { $0 == "WALCTL_ARCHIVE_ASYNC" ? "false" : e.variable($0) }
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: sync), .fallBack)
        XCTAssertEqual(FastFront.run(["w", "archive-push", "./pg_wal/" + seg], env: e), .fallBack)
        // The source file changed since the pusher stored it.
        let fd = open(tmp + "/pg_wal/" + seg, O_WRONLY | O_APPEND); _ = Glibc.write(fd, "x", 1); close(fd)
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ok), "a fall-back leaves the result to the full binary")
        let (_, e2) = try pushSetup(alreadyArchived: true)
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e2), .fallBack)
    }

    /// Issue 13: a result in a spool another user can write is never trusted (the full binary
    /// refuses such a spool); nor one for a file PostgreSQL has not marked ready (a manual push).
    func testPushFallsBackOnASpoolOthersCanWriteOrWithoutReady() throws {
        let (ok, e) = try pushSetup()
        XCTAssertEqual(chmod(tmp + "/walctl_spool/archive", 0o777), 0)
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
        XCTAssertEqual(chmod(tmp + "/walctl_spool/archive", 0o700), 0)
        if geteuid() == 0 {
            XCTAssertEqual(chown(tmp + "/walctl_spool", 65534, 65534), 0)
            XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
            XCTAssertEqual(chown(tmp + "/walctl_spool", 0, 0), 0)
        }
        // A symlinked archive directory (to a directory of ours, even) is not followed.
        XCTAssertEqual(rename(tmp + "/walctl_spool/archive", tmp + "/real-archive"), 0)
        XCTAssertEqual(symlink(tmp + "/real-archive", tmp + "/walctl_spool/archive"), 0)
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
        unlink(tmp + "/walctl_spool/archive")
        XCTAssertEqual(rename(tmp + "/real-archive", tmp + "/walctl_spool/archive"), 0)
        unlink(tmp + "/pg_wal/archive_status/" + seg + ".ready")
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ok))
        try write(tmp + "/pg_wal/archive_status/" + seg + ".ready", [])
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .exit(0))
    }

    /// Issue 12: a result whose meta records damaged WAL is left to the full binary, which writes
    /// `WARNING: DAMAGED WAL` into PostgreSQL's log; a %p that is not a regular file falls back at once.
    func testPushFallsBackOnDamagedWALAndSpecialFiles() throws {
        let (ok, e) = try pushSetup()
        var summary = SegmentSummary()
        summary.crcFailures = 1
        summary.damagedAt = LSN(0x0100_2000)
        summary.damageReason = "a record fails its CRC-32C"
        var m = meta()
        m.summary = summary
        var st = stat()
        XCTAssertEqual(lstat(tmp + "/pg_wal/" + seg, &st), 0)
        let rec = PushRecordShape(repository: "file:///repo", sourceSize: 16,
                                  sourceMTimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec), meta: m, alreadyArchived: false)
        try write(ok, try encode(rec))
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ok))
        // Sound WAL with a summary: served.
        m.summary = SegmentSummary()
        try write(ok, try encode(PushRecordShape(repository: "file:///repo", sourceSize: 16, sourceMTimeNs: rec.sourceMTimeNs, meta: m, alreadyArchived: false)))
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .exit(0))
        // A FIFO under the name: fall back at once (the daemon lock is not held, so this never waits).
        let fifo = "000000010000000000000009"
        XCTAssertEqual(mkfifo(tmp + "/pg_wal/" + fifo, 0o600), 0)
        let start = Date()
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + fifo], env: e), .fallBack)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    /// Holds `path` (a daemon lock) with flock from this process; returns the fd to close.
    func holdLock(_ path: String) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        XCTAssertEqual(flock(fd, LOCK_EX), 0)
        return fd
    }

    /// Writes `bytes` to `path` after `delay` seconds, the way the daemons do (temporary + rename).
    func writeLater(_ path: String, _ bytes: [UInt8], after delay: Double) -> Thread {
        let t = Thread {
            Thread.sleep(forTimeInterval: delay)
            let tmp = path + ".tmp.test"
            FileManager.default.createFile(atPath: tmp, contents: Data(bytes))
            rename(tmp, path)
        }
        t.start()
        return t
    }

    func testPushWaitsForTheRunningPusherInsteadOfFallingBack() throws {
        let (ok, e) = try pushSetup()
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: ok)))
        unlink(ok)
        let fd = holdLock(tmp + "/walctl_spool/archive/daemon.lock")
        defer { close(fd) }
        _ = writeLater(ok, bytes, after: 0.3)
        let start = Date()
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .exit(0))
        let waited = Date().timeIntervalSince(start)
        XCTAssertGreaterThan(waited, 0.25)
        XCTAssertLessThan(waited, 5, "woken by the directory, not by the time limit")
        XCTAssertFalse(FileManager.default.fileExists(atPath: ok))
    }

    func testPushFallsBackAtOnceWithoutAPusherOrOnAnError() throws {
        let (ok, e) = try pushSetup()
        unlink(ok)
        var start = Date()
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
        XCTAssertLessThan(Date().timeIntervalSince(start), 1, "no pusher holds the lock: the full binary starts one")
        let fd = holdLock(tmp + "/walctl_spool/archive/daemon.lock")
        defer { close(fd) }
        _ = writeLater(tmp + "/walctl_spool/archive/" + seg + ".error", Array("disk full\n".utf8), after: 0.2)
        start = Date()
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .fallBack)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/walctl_spool/archive/" + seg + ".error"), "the full binary reports it")
    }

    // MARK: archive-get

    /// A spool with `seg` prefetched, the repository's meta, and a held prefetcher lock (returned fd).
    func getSetup(recordMeta: ArchivedFileMeta? = nil, repoMeta: ArchivedFileMeta? = nil, bootID: String? = nil) throws -> Int32 {
        let spool = tmp + "/pg_wal/walctl_prefetch"
        try write(spool + "/" + seg, Array(repeating: 9, count: 16))
        try write(spool + "/" + seg + ".rec", try encode(PrefetchRecord(repository: "file:///repo/", meta: recordMeta ?? meta(), bootID: bootID ?? boot)))
        try write(tmp + "/repo/wal/" + String(seg.prefix(16)) + "/" + seg + ".meta", try Repository.encodeMeta(repoMeta ?? meta()))
        let fd = open(spool + "/daemon.lock", O_RDWR | O_CREAT, 0o600)
        XCTAssertEqual(flock(fd, LOCK_EX), 0)
        return fd
    }

    func getEnv() -> FastFront.Environment {
        env(["WALCTL_RESTORE_PREFETCH": "8", "WALCTL_REPOSITORY": "file://" + tmp + "/repo/"])
    }

    func testGetServesAVerifiedPrefetchedSegment() throws {
        let fd = try getSetup()
        defer { close(fd) }
        let repo = tmp + "/repo/"
        // The record names another repository setting: not served.
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: getEnv()), .fallBack)
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", try encode(PrefetchRecord(repository: "file://" + repo, meta: meta(), bootID: boot)))
        XCTAssertEqual(FastFront.run(["w", "archive-get", "--progress-file", tmp + "/progress", seg, "pg_wal/RECOVERYXLOG"], env: getEnv()), .exit(0))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/pg_wal/RECOVERYXLOG")).count, 16)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/pg_wal/walctl_prefetch/" + seg))
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec"))
        XCTAssertEqual(try String(contentsOfFile: tmp + "/pg_wal/walctl_prefetch/want", encoding: .utf8), seg)
        XCTAssertTrue(try String(contentsOfFile: tmp + "/progress", encoding: .utf8).hasPrefix(seg + " "))
    }

    func assertNotServed(_ fd: Int32, env e: FastFront.Environment? = nil, file: StaticString = #filePath, line: UInt = #line) {
        defer { if fd >= 0 { close(fd) } }
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: e ?? getEnv()), .fallBack, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/pg_wal/RECOVERYXLOG"), file: file, line: line)
    }

    func repoRecord() throws {
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec",
                  try encode(PrefetchRecord(repository: "file://" + tmp + "/repo/", meta: meta(), bootID: boot)))
    }

    func testGetDoesNotServeAChangedMeta() throws {
        let fd = try getSetup(repoMeta: meta(crc: 0xdeadbeef))
        try repoRecord()
        try write(tmp + "/repo/wal/" + String(seg.prefix(16)) + "/" + seg + ".meta", try Repository.encodeMeta(meta(crc: 0xdeadbeef)))
        assertNotServed(fd)
    }

    func testGetWaitsForASegmentBeingFetched() throws {
        let fd = try getSetup()
        defer { close(fd) }
        try repoRecord()
        let rec = tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec"
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: rec)))
        unlink(rec)
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".busy", [])
        _ = writeLater(rec, bytes, after: 0.3)
        let start = Date()
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: getEnv()), .exit(0))
        XCTAssertGreaterThan(Date().timeIntervalSince(start), 0.25)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/pg_wal/RECOVERYXLOG")).count, 16)
    }

    func testGetDoesNotServeAnotherBootOrAMissingRecordOrWithoutPrefetcher() throws {
        var fd = try getSetup()
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", try encode(PrefetchRecord(repository: "file://" + tmp + "/repo/", meta: meta(), bootID: "other")))
        assertNotServed(fd)
        fd = try getSetup(); try repoRecord()
        unlink(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec")   // partial: data without its record
        assertNotServed(fd)
        fd = try getSetup(); try repoRecord()
        close(fd)                                                  // no prefetcher running
        assertNotServed(-1)
        fd = try getSetup(); try repoRecord()
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", Array("{\"repository\":".utf8))   // torn record
        assertNotServed(fd)
        fd = try getSetup(); try repoRecord()
        assertNotServed(fd, env: env(["WALCTL_RESTORE_PREFETCH": "0", "WALCTL_REPOSITORY": "file://" + tmp + "/repo/"]))
        fd = try getSetup(); try repoRecord()
        assertNotServed(fd, env: env(["WALCTL_RESTORE_PREFETCH": "8", "WALCTL_REPOSITORY": "s3://b/p"]))
    }

    /// On S3 the record (this boot, this repository setting, a plausible meta) is served without
    /// a meta read: there is no repository walctl-fast could read, and a meta is never replaced.
    func testGetServesFromAnS3RepositoryOnTheRecordAlone() throws {
        let s3 = "s3://bucket/prefix"
        var fd = try getSetup()
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", try encode(PrefetchRecord(repository: s3, meta: meta(), bootID: boot)))
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"],
                                     env: env(["WALCTL_RESTORE_PREFETCH": "8", "WALCTL_REPOSITORY": s3])), .exit(0))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/pg_wal/RECOVERYXLOG")).count, 16)
        close(fd)
        unlink(tmp + "/pg_wal/RECOVERYXLOG")
        // An encrypted S3 repository likewise (issue 17): the record alone, no key, no libcrypto.
        let encrypted = ["WALCTL_RESTORE_PREFETCH": "8", "WALCTL_REPOSITORY": s3, "WALCTL_REPOSITORY_CIPHER": "aes-256-gcm",
                         "WALCTL_REPOSITORY_CIPHER_PASS_FILE": tmp + "/no-such-pass-file"]
        fd = try getSetup()
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", try encode(PrefetchRecord(repository: s3, meta: meta(), bootID: boot)))
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: env(encrypted)), .exit(0))
        close(fd)
        unlink(tmp + "/pg_wal/RECOVERYXLOG")
        // Another bucket's record or another boot's (plain or encrypted), or a cipher without a
        // passphrase (walctl reports it): the full binary.
        for (repo, bootID, cipher, pass) in [("s3://other/prefix", boot, "none", ""), (s3, "other", "none", ""),
                                             ("s3://other/prefix", boot, "aes-256-gcm", "p"), (s3, "other", "aes-256-gcm", "p"),
                                             (s3, boot, "aes-256-gcm", "")] {
            fd = try getSetup()
            try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", try encode(PrefetchRecord(repository: repo, meta: meta(), bootID: bootID)))
            assertNotServed(fd, env: env(["WALCTL_RESTORE_PREFETCH": "8", "WALCTL_REPOSITORY": s3, "WALCTL_REPOSITORY_CIPHER": cipher,
                                          "WALCTL_REPOSITORY_CIPHER_PASS": pass]))
        }
    }

    /// An encrypted file repository (issue 17): its meta is ciphertext walctl-fast cannot read (no
    /// key, no libcrypto), so the record is served as on S3, provided the meta object still exists
    /// (a segment expire removed is left to walctl, as on a plaintext file repository).
    func testGetServesFromAnEncryptedFileRepositoryOnTheRecordWhileItsMetaExists() throws {
        let metaPath = tmp + "/repo/wal/" + String(seg.prefix(16)) + "/" + seg + ".meta"
        let ciphertext = Array("WCTLENC".utf8) + [1, 0, 1, 0, 0] + Array(repeating: 0x5a, count: 120)
        func encEnv(_ extra: [String: String] = [:]) -> FastFront.Environment {
            var v = ["WALCTL_RESTORE_PREFETCH": "8", "WALCTL_REPOSITORY": "file://" + tmp + "/repo/",
                     "WALCTL_REPOSITORY_CIPHER": "AES-256-GCM", "WALCTL_REPOSITORY_CIPHER_PASS_FILE": tmp + "/no-such-pass-file"]
            for (k, x) in extra { v[k] = x }
            return env(v)
        }
        var fd = try getSetup()
        try repoRecord()
        try write(metaPath, ciphertext)
        // Plaintext configuration, encrypted meta: cannot be compared, walctl decides (and refuses).
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: getEnv()), .fallBack)
        XCTAssertEqual(FastFront.run(["w", "archive-get", "--progress-file", tmp + "/progress", seg, "pg_wal/RECOVERYXLOG"], env: encEnv()), .exit(0))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp + "/pg_wal/RECOVERYXLOG")).count, 16)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec"))
        XCTAssertEqual(try String(contentsOfFile: tmp + "/pg_wal/walctl_prefetch/want", encoding: .utf8), seg)
        XCTAssertTrue(try String(contentsOfFile: tmp + "/progress", encoding: .utf8).hasPrefix(seg + " "))
        close(fd)
        unlink(tmp + "/pg_wal/RECOVERYXLOG")
        // The meta object gone (expire), or a symlink in its place: walctl.
        fd = try getSetup(); try repoRecord()
        unlink(metaPath)
        assertNotServed(fd, env: encEnv())
        fd = try getSetup(); try repoRecord()
        unlink(metaPath)
        XCTAssertEqual(symlink(tmp + "/elsewhere.meta", metaPath), 0)
        try write(tmp + "/elsewhere.meta", ciphertext)
        assertNotServed(fd, env: encEnv())
        unlink(metaPath)
        // Another repository's record, another boot's, a record that is not a meta, a torn one.
        fd = try getSetup()
        try write(metaPath, ciphertext)
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", try encode(PrefetchRecord(repository: "file:///repo/", meta: meta(), bootID: boot)))
        assertNotServed(fd, env: encEnv())
        fd = try getSetup()
        try write(metaPath, ciphertext)
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", try encode(PrefetchRecord(repository: "file://" + tmp + "/repo/", meta: meta(), bootID: "other")))
        assertNotServed(fd, env: encEnv())
        fd = try getSetup()
        try write(metaPath, ciphertext)
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec",
                  Array(("{\"bootID\":\"" + boot + "\",\"meta\":{\"name\":\"" + seg + "\"},\"repository\":\"file://" + tmp + "/repo/\"}").utf8))
        assertNotServed(fd, env: encEnv())
        fd = try getSetup()
        try write(metaPath, ciphertext)
        try write(tmp + "/pg_wal/walctl_prefetch/" + seg + ".rec", Array("{\"repository\":".utf8))
        assertNotServed(fd, env: encEnv())
        // No prefetcher running, or archive-get-fsync on: walctl.
        fd = try getSetup(); try repoRecord(); try write(metaPath, ciphertext)
        close(fd)
        assertNotServed(-1, env: encEnv())
        fd = try getSetup(); try repoRecord(); try write(metaPath, ciphertext)
        assertNotServed(fd, env: encEnv(["WALCTL_ARCHIVE_GET_FSYNC": "on"]))
    }

    /// The async pusher's `.ok` for an encrypted repository is the same record (its meta is the
    /// plaintext one the pusher encrypted and stored): walctl-fast consumes it without a key.
    func testPushServesAnEncryptedRepositorysOK() throws {
        let (ok, _) = try pushSetup()
        let e = env(["WALCTL_ARCHIVE_ASYNC": "true", "WALCTL_REPOSITORY": "file:///repo", "WALCTL_REPOSITORY_CIPHER": "aes-256-gcm",
                     "WALCTL_REPOSITORY_CIPHER_PASS_FILE": tmp + "/no-such-pass-file"])
        XCTAssertEqual(FastFront.run(["w", "archive-push", "pg_wal/" + seg], env: e), .exit(0))
        XCTAssertFalse(FileManager.default.fileExists(atPath: ok))
    }

    // MARK: archive-get straight from a plaintext file repository (no prefetching)

    /// `seg` archived as walctl archives it (zstd object named by its CRC-32C, the meta beside it)
    /// in `tmp/repo`: returns the original bytes and the object's path.
    func archiveDirect(size: Int = 3 << 20) throws -> (bytes: [UInt8], object: String) {
        var bytes = [UInt8](repeating: 0, count: size)
        var x: UInt32 = 12345
        for i in 0..<size { x = x &* 1_103_515_245 &+ 12345; bytes[i] = i % 7 == 0 ? UInt8(truncatingIfNeeded: x >> 16) : UInt8(i & 0x3F) }
        var compressed: [UInt8] = []
        let c = try CodecKind.zstd.makeCompressor()
        try bytes.withUnsafeBytes { try c.compress($0, into: { compressed.append(contentsOf: $0) }) }
        let crc = bytes.withUnsafeBytes { CRC32C.checksum($0) }
        let m = ArchivedFileMeta(name: seg, size: Int64(size), storedSize: Int64(compressed.count), codec: "zstd", crc32c: crc,
                                 archivedAt: PGTimestamp(unixSeconds: 1_700_000_000), summary: nil)
        let dir = tmp + "/repo/wal/" + String(seg.prefix(16)) + "/"
        let object = dir + seg + "." + ArchivedFileMeta.hex(crc) + ".zst"
        try write(object, compressed)
        try write(dir + seg + ".meta", try Repository.encodeMeta(m))
        try FileManager.default.createDirectory(atPath: tmp + "/pg_wal", withIntermediateDirectories: true)
        return (bytes, object)
    }

    func directEnv(_ extra: [String: String] = [:]) -> FastFront.Environment {
        env(["WALCTL_REPOSITORY": "file://" + tmp + "/repo/"].merging(extra) { $1 })
    }

    /// Names in pg_wal other than the target's: temporary files left behind.
    func leftovers() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: tmp + "/pg_wal")) ?? []).filter { $0 != "RECOVERYXLOG" }
    }

    /// The front's paths of a segment's meta and zstd object are the repository layout's.
    func testSegmentPathsAreTheRepositoryLayouts() throws {
        let name = try XCTUnwrap(WALFileName(seg))
        for crc: UInt32 in [0, 0xf, 0x1234abcd, 0xffff_ffff] {
            XCTAssertEqual(FastFront.segmentObjectPath(root: "/r", segment: seg, crc32c: crc),
                           "/r/" + RepositoryLayout.objectKey(name, crc32c: crc, extension: CodecKind.zstd.fileExtension))
        }
        XCTAssertEqual(FastFront.segmentMetaPath(root: "/r", segment: seg), "/r/" + RepositoryLayout.metaKey(name))
    }

    func testGetDirectRestoresAVerifiedSegmentFromAPlainFileRepository() throws {
        let (bytes, _) = try archiveDirect()
        XCTAssertEqual(FastFront.run(["w", "archive-get", "--progress-file", tmp + "/progress", seg, "pg_wal/RECOVERYXLOG"], env: directEnv()), .exit(0))
        XCTAssertTrue(Array(try Data(contentsOf: URL(fileURLWithPath: tmp + "/pg_wal/RECOVERYXLOG"))) == bytes, "restored bytes differ")
        let attrs = try FileManager.default.attributesOfItem(atPath: tmp + "/pg_wal/RECOVERYXLOG")
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual(leftovers(), [])
        XCTAssertTrue(try String(contentsOfFile: tmp + "/progress", encoding: .utf8).hasPrefix(seg + " "))
        // An existing file at %p is replaced, as by the full binary's rename.
        try write(tmp + "/pg_wal/RECOVERYXLOG", Array("old".utf8))
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: directEnv(["WALCTL_LOG_LEVEL": "info"])), .exit(0))
        XCTAssertTrue(Array(try Data(contentsOf: URL(fileURLWithPath: tmp + "/pg_wal/RECOVERYXLOG"))) == bytes, "restored bytes differ")
    }

    /// Every case but the plain success goes to the full binary with %p as it was (here: "old")
    /// and no temporary file left.
    func assertDirectFallsBack(_ args: [String]? = nil, env e: FastFront.Environment? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        try write(tmp + "/pg_wal/RECOVERYXLOG", Array("old".utf8))
        XCTAssertEqual(FastFront.run(args ?? ["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: e ?? directEnv()), .fallBack, file: file, line: line)
        XCTAssertEqual(try String(contentsOfFile: tmp + "/pg_wal/RECOVERYXLOG", encoding: .utf8), "old", file: file, line: line)
        XCTAssertEqual(leftovers(), [], file: file, line: line)
    }

    func testGetDirectLeavesEveryOtherCaseToTheFullBinary() throws {
        let (bytes, object) = try archiveDirect()
        let metaPath = tmp + "/repo/wal/" + String(seg.prefix(16)) + "/" + seg + ".meta"
        let good = try Data(contentsOf: URL(fileURLWithPath: object))
        let goodMeta = try Data(contentsOf: URL(fileURLWithPath: metaPath))
        // Settings that change what a hit does.
        try assertDirectFallsBack(env: directEnv(["WALCTL_RESTORE_PREFETCH": "8"]))
        try assertDirectFallsBack(env: directEnv(["WALCTL_ARCHIVE_GET_FSYNC": "true"]))
        try assertDirectFallsBack(env: directEnv(["WALCTL_ARCHIVE_GET_FSYNC": "maybe"]))
        try assertDirectFallsBack(env: directEnv(["WALCTL_REPOSITORY_CIPHER": "aes-256-gcm"]))
        try assertDirectFallsBack(env: directEnv(["WALCTL_LOG_LEVEL": "debug"]))
        try assertDirectFallsBack(env: env(["WALCTL_REPOSITORY": "s3://bucket/prefix"]))
        try assertDirectFallsBack(env: env(["WALCTL_REPOSITORY": "relative/repo"]))
        try assertDirectFallsBack(["w", "archive-get", "00000002.history", "pg_wal/RECOVERYXLOG"])
        try assertDirectFallsBack(["w", "archive-get", seg, "pg_wal/../pg_wal/RECOVERYXLOG"])
        // The object damaged: a flipped byte, cut short, a byte too many, another file's bytes.
        var flipped = good; flipped[flipped.count / 2] ^= 0x40
        for damaged in [flipped, good.prefix(good.count - 100), good + Data([0]), good.prefix(good.count / 2)] {
            try damaged.write(to: URL(fileURLWithPath: object))
            try assertDirectFallsBack()
        }
        try good.write(to: URL(fileURLWithPath: object))
        // The meta: a size the object does not have (smaller: the decoding stops at the limit), a
        // CRC-32C the bytes do not have (the object renamed to match it), another codec, not JSON,
        // another segment's, absent.
        func setMeta(_ m: ArchivedFileMeta) throws { try write(metaPath, try Repository.encodeMeta(m)) }
        let crc = bytes.withUnsafeBytes { CRC32C.checksum($0) }
        func m(size: Int64 = Int64(3 << 20), crc: UInt32, codec: String = "zstd", name: String? = nil) -> ArchivedFileMeta {
            ArchivedFileMeta(name: name ?? seg, size: size, storedSize: Int64(good.count), codec: codec, crc32c: crc,
                             archivedAt: PGTimestamp(unixSeconds: 1_700_000_000), summary: nil)
        }
        for size in [Int64(1 << 20), Int64(3 << 20) - 1, Int64(3 << 20) + 1, 0] {
            try setMeta(m(size: size, crc: crc))
            try assertDirectFallsBack()
        }
        let wrong = crc ^ 1
        let wrongObject = tmp + "/repo/wal/" + String(seg.prefix(16)) + "/" + seg + "." + ArchivedFileMeta.hex(wrong) + ".zst"
        try good.write(to: URL(fileURLWithPath: wrongObject))
        try setMeta(m(crc: wrong))
        try assertDirectFallsBack()
        try setMeta(m(crc: crc, codec: "gzip"))
        try assertDirectFallsBack()
        try setMeta(m(crc: crc, name: "000000010000000000000006"))
        try assertDirectFallsBack()
        try write(metaPath, Array("not json".utf8))
        try assertDirectFallsBack()
        try FileManager.default.removeItem(atPath: metaPath)
        try assertDirectFallsBack()
        // The meta or the object a symbolic link (to good ones): never followed.
        try goodMeta.write(to: URL(fileURLWithPath: tmp + "/meta-elsewhere"))
        try FileManager.default.createSymbolicLink(atPath: metaPath, withDestinationPath: tmp + "/meta-elsewhere")
        try assertDirectFallsBack()
        try FileManager.default.removeItem(atPath: metaPath)
        try goodMeta.write(to: URL(fileURLWithPath: metaPath))
        try FileManager.default.moveItem(atPath: object, toPath: tmp + "/object-elsewhere")
        try FileManager.default.createSymbolicLink(atPath: object, withDestinationPath: tmp + "/object-elsewhere")
        try assertDirectFallsBack()
        try FileManager.default.removeItem(atPath: object)
        try assertDirectFallsBack()   // meta without its object: the full binary reports the broken repository
        // Restored, the same repository serves again.
        try FileManager.default.moveItem(atPath: tmp + "/object-elsewhere", toPath: object)
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "pg_wal/RECOVERYXLOG"], env: directEnv()), .exit(0))
        XCTAssertTrue(Array(try Data(contentsOf: URL(fileURLWithPath: tmp + "/pg_wal/RECOVERYXLOG"))) == bytes, "restored bytes differ")
    }

    /// A target directory the front cannot write: the full binary, with its error.
    func testGetDirectFallsBackWhenTheTargetCannotBeWritten() throws {
        _ = try archiveDirect()
        XCTAssertEqual(FastFront.run(["w", "archive-get", seg, "missing/RECOVERYXLOG"], env: directEnv()), .fallBack)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/missing"))
    }

    func testJSONStrictness() {
        XCTAssertNil(JSONValue.parse(Array("{\"a\":1,\"a\":2}".utf8)))
        XCTAssertNil(JSONValue.parse(Array("{\"a\":1".utf8)))
        XCTAssertEqual(JSONValue.parse(Array("{\"b\":\"x\\/y\",\"a\":[1,null]}".utf8)), JSONValue.parse(Array(" {\"a\":[1,null],\"b\":\"x/y\"}".utf8)))
        XCTAssertNotEqual(JSONValue.parse(Array("{\"a\":1}".utf8)), JSONValue.parse(Array("{\"a\":1.0}".utf8)))
    }
}
