@testable import Commands
import Foundation
import Storage
import WALFormat
import XCTest

/// Pure tests of the file-level incremental pieces: the tar writer (read back by TarReader), the
/// PostgreSQL-format manifest (read back by ServerManifest), PostgreSQL's exclusions.
final class IncrementalUnitTests: XCTestCase {
    func testTarWriterRoundTripsThroughTarReader() throws {
        var bytes: [UInt8] = []
        let long = String(repeating: "d/", count: 70) + "file"   // 144 bytes: needs a pax path
        let body = Array("hello".utf8)
        bytes += TarWriter.header(path: "base", kind: .directory, mode: 0o700, size: 0, mtime: 1_700_000_000)
        bytes += TarWriter.header(path: "base/1/1259", kind: .file, mode: 0o600, size: 5, mtime: 1_700_000_001)
        bytes += body + [UInt8](repeating: 0, count: TarWriter.padding(5))
        bytes += TarWriter.header(path: long, kind: .file, mode: 0o640, size: 0, mtime: 1)
        bytes += TarWriter.header(path: "pg_tblspc/16384", kind: .symlink, mode: 0o777, size: 0, mtime: 2, linkTarget: "/srv/ts")
        bytes += TarWriter.end
        let c = BackupUnitTests.Collector()
        let r = TarReader(visitor: c)
        // Odd chunk sizes.
        var i = 0
        while i < bytes.count {
            let n = min(97, bytes.count - i)
            try bytes[i..<(i + n)].withUnsafeBytes { try r.feed($0) }
            i += n
        }
        try r.finish()
        XCTAssertEqual(c.entries.map(\.path), ["base", "base/1/1259", long, "pg_tblspc/16384"])
        XCTAssertEqual(c.entries.map(\.kind), [.directory, .file, .file, .symlink])
        XCTAssertEqual(c.entries[1].mode, 0o600)
        XCTAssertEqual(c.entries[1].mtime, 1_700_000_001)
        XCTAssertEqual(c.contents["base/1/1259"], body)
        XCTAssertEqual(c.entries[3].linkTarget, "/srv/ts")
        // What GNU tar makes of it.
        let dir = NSTemporaryDirectory() + "walctl-tar-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/a.tar", contents: Data(bytes))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/tar")
        p.arguments = ["-tf", dir + "/a.tar"]
        let out = Pipe()
        p.standardOutput = out
        try p.run(); p.waitUntilExit()
        let listed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertEqual(listed, ["base/", "base/1/1259", long, "pg_tblspc/16384"])
    }

    func testManifestIsPostgreSQLsFormatWithItsChecksum() throws {
        let files = [ManifestWriter.Entry(path: "backup_label", size: 209, lastModified: ManifestWriter.lastModified(1_796_067_162), checksum: "049f98a6"),
                     ManifestWriter.Entry(path: "base/1/\"q\"", size: 8192, lastModified: "2026-11-30 19:32:42 GMT", checksum: "43872087")]
        let bytes = ManifestWriter.render(files: files, timeline: 1, start: LSN(0xB00_0028), end: LSN(0xB00_0100))
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertEqual(files[0].lastModified, "2026-11-30 19:32:42 GMT")
        // Read back.
        let m = try ServerManifest(json: bytes)
        XCTAssertEqual(m.version, 1)
        XCTAssertEqual(m.files["backup_label"], ServerManifest.File(size: 209, algorithm: "CRC32C", checksum: "049f98a6", lastModified: "2026-11-30 19:32:42 GMT"))
        XCTAssertEqual(m.files["base/1/\"q\""]?.size, 8192)
        // The Manifest-Checksum is the SHA-256 of everything before its line (pg_verifybackup checks it).
        let cut = text.range(of: "\"Manifest-Checksum\"")!
        let sum = Digest.sha256Hex(String(text[..<cut.lowerBound]))
        XCTAssertTrue(text.hasSuffix("\"Manifest-Checksum\": \"\(sum)\"}\n"), text)
        XCTAssertTrue(text.contains("\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/B000028\", \"End-LSN\": \"0/B000100\" }\n],\n"))
        // Valid JSON as a whole.
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(bytes)))
    }

    func testExclusionsFollowBasebackupC() {
        for f in ["postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "backup_manifest",
                  "postgresql.auto.conf.tmp", "current_logfiles.tmp", "pg_internal.init", "pg_internal.init.123", "pgsql_tmp123.4"] {
            XCTAssertTrue(BackupExclusions.skips(name: f, relDir: ""), f)
        }
        for f in ["postgresql.conf", "PG_VERSION", "16384", "pg_control"] { XCTAssertFalse(BackupExclusions.skips(name: f, relDir: ""), f) }
        XCTAssertTrue(BackupExclusions.isTempRelation("t3_16384"))
        XCTAssertTrue(BackupExclusions.isTempRelation("t12_16384_fsm"))
        XCTAssertFalse(BackupExclusions.isTempRelation("16384"))
        XCTAssertFalse(BackupExclusions.isTempRelation("t_1"))
        XCTAssertEqual(BackupExclusions.relfilenode("16384_init")?.fork, "init")
        XCTAssertEqual(BackupExclusions.relfilenode("16384.2")?.node, "16384")
        XCTAssertNil(BackupExclusions.relfilenode("pg_filenode.map"))
        XCTAssertTrue(BackupExclusions.selfChecksummed("global/pg_control"))
        XCTAssertTrue(BackupExclusions.selfChecksummed("base/5/pg_filenode.map"))
        XCTAssertTrue(BackupExclusions.selfChecksummed("pg_twophase/0000A1B2"))
        XCTAssertFalse(BackupExclusions.selfChecksummed("base/5/1259"))
    }

    func testEveryValidPgControlHasTheSameWholeFileCRC() {
        // Why selfChecksummed exists: data followed by its own CRC-32C (little-endian), then zeros,
        // has one CRC-32C whatever the data.
        func file(_ fill: UInt8) -> [UInt8] {
            var d = [UInt8](repeating: fill, count: 296)
            var c = CRC32C(); d.withUnsafeBytes { c.update($0) }
            d += withUnsafeBytes(of: c.value.littleEndian) { Array($0) }
            return d + [UInt8](repeating: 0, count: 8192 - d.count)
        }
        func crc(_ b: [UInt8]) -> UInt32 { var c = CRC32C(); b.withUnsafeBytes { c.update($0) }; return c.value }
        XCTAssertNotEqual(file(1), file(2))
        XCTAssertEqual(crc(file(1)), crc(file(2)))
    }

    func testWalkOfADataDirectory() throws {
        let d = NSTemporaryDirectory() + "walctl-walk-" + UUID().uuidString
        let fm = FileManager.default
        for dir in ["global", "base/5", "pg_wal/archive_status", "pg_replslot/slot1", "pg_stat_tmp", "pg_tblspc", "base/5/pgsql_tmp"] {
            try fm.createDirectory(atPath: d + "/" + dir, withIntermediateDirectories: true)
        }
        defer { try? fm.removeItem(atPath: d) }
        for f in ["global/pg_control", "PG_VERSION", "postmaster.pid", "base/5/16384", "base/5/16390", "base/5/16390_init", "base/5/16390_fsm",
                  "base/5/t3_17000", "base/5/pg_internal.init", "pg_wal/000000010000000000000001", "pg_replslot/slot1/state",
                  "pg_stat_tmp/x", "base/5/pgsql_tmp/pgsql_tmp1.0"] {
            fm.createFile(atPath: d + "/" + f, contents: Data("x".utf8))
        }
        try fm.createSymbolicLink(atPath: d + "/pg_tblspc/16400", withDestinationPath: "/srv/ts")
        let entries = try DataDirectoryWalk.dataDirectory(d)
        let files = Set(entries.filter { $0.kind == .file }.map(\.path))
        XCTAssertEqual(files, ["global/pg_control", "PG_VERSION", "base/5/16384", "base/5/16390_init"])
        XCTAssertEqual(entries.last?.path, "global/pg_control")
        let dirs = Set(entries.filter { $0.kind == .directory }.map(\.path))
        XCTAssertTrue(dirs.isSuperset(of: ["pg_wal", "pg_wal/archive_status", "pg_replslot", "pg_stat_tmp", "base/5"]))
        XCTAssertFalse(dirs.contains("pg_replslot/slot1"))
        XCTAssertFalse(dirs.contains("base/5/pgsql_tmp"))
        XCTAssertEqual(entries.first { $0.kind == .symlink }?.linkTarget, "/srv/ts")
    }
}
