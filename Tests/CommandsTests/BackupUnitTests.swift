@testable import Commands
import Foundation
import PGClient
import XCTest

/// Pure tests of the backup pieces: tar parsing, command text, manifest checksums, labels.
final class BackupUnitTests: XCTestCase {
    final class Collector: TarVisitor {
        var entries: [TarEntry] = []
        var contents: [String: [UInt8]] = [:]
        var current = ""
        func begin(_ e: TarEntry) throws { entries.append(e); current = e.path; if e.kind == .file { contents[e.path] = [] } }
        func data(_ b: UnsafeRawBufferPointer) throws { contents[current, default: []].append(contentsOf: b) }
        func end(_ e: TarEntry) throws {}
    }

    /// GNU tar writes ustar, GNU long names and pax headers; each is parsed, fed in odd-sized chunks.
    func testRestoreNeverWritesThroughALinkItMade() throws {
        let base = NSTemporaryDirectory() + "walctl-restore-link-" + UUID().uuidString
        let root = base + "/root", outside = base + "/outside"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let w = RestoreWriter(root: root, manifestPrefix: "", manifest: nil, owner: nil, tablespaceTargets: [:], isBase: true)
        try w.begin(TarEntry(path: "pg_tblspc", kind: .directory, mode: 0o700, size: 0, linkTarget: "", mtime: 0))
        try w.begin(TarEntry(path: "pg_tblspc/16384", kind: .symlink, mode: 0o777, size: 0, linkTarget: outside, mtime: 0))
        XCTAssertThrowsError(try w.begin(TarEntry(path: "pg_tblspc/16384/evil", kind: .file, mode: 0o600, size: 1, linkTarget: "", mtime: 0)))
        XCTAssertThrowsError(try w.begin(TarEntry(path: "pg_tblspc/16384", kind: .directory, mode: 0o777, size: 0, linkTarget: "", mtime: 0)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: outside + "/evil"))
    }

    /// `--delta` rewrites a file that is there in place, writing only the blocks that differ, and
    /// cuts it to the archive's size; a file with a second hard link (pg_upgrade --link) is replaced,
    /// never written into; a symbolic link at the file's name is replaced, never followed.
    func testDeltaRewritesInPlaceOnlyWhatDiffers() throws {
        let base = NSTemporaryDirectory() + "walctl-delta-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: base + "/root", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = base + "/root"
        let new = (0..<(40 * 8192 + 100)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ ($0 >> 13)) }
        func restore(_ name: String, _ bytes: [UInt8], chunk: Int = 65536 + 512) throws -> RestoreWriter {
            let w = RestoreWriter(root: root, manifestPrefix: "", manifest: nil, owner: nil, tablespaceTargets: [:], isBase: true)
            w.replace = true
            let e = TarEntry(path: name, kind: .file, mode: 0o600, size: Int64(bytes.count), linkTarget: "", mtime: 0)
            try w.begin(e)
            try bytes.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count { let n = min(chunk, raw.count - off); try w.data(UnsafeRawBufferPointer(rebasing: raw[off..<(off + n)])); off += n }
            }
            try w.end(e)
            return w
        }
        func inode(_ p: String) throws -> UInt64 { (try FileManager.default.attributesOfItem(atPath: p)[.systemFileNumber] as! NSNumber).uint64Value }
        func contents(_ p: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: p))) }

        // Three blocks changed and the file one block longer than the archive's: in place.
        var old = new + [UInt8](repeating: 9, count: 8192)
        for at in [5, 8192 * 17 + 3, 8192 * 39 + 50] { old[at] ^= 0xFF }
        try Data(old).write(to: URL(fileURLWithPath: root + "/t"))
        let before = try inode(root + "/t")
        let w = try restore("t", new)
        XCTAssertEqual(try contents(root + "/t"), new)
        XCTAssertEqual(try inode(root + "/t"), before)
        XCTAssertGreaterThan(w.keptInPlace, Int64(new.count) * 8 / 10)        // most of it not written
        XCTAssertLessThan(w.rewrittenInPlace, Int64(8 * 8192))

        // Shorter than the archive's: extended in place.
        try Data(new.prefix(1000)).write(to: URL(fileURLWithPath: root + "/s"))
        _ = try restore("s", new, chunk: 3000)
        XCTAssertEqual(try contents(root + "/s"), new)

        // A second hard link: replaced; the other name keeps its bytes.
        try Data(old).write(to: URL(fileURLWithPath: root + "/h"))
        XCTAssertEqual(link(root + "/h", base + "/other-cluster"), 0)
        _ = try restore("h", new)
        XCTAssertEqual(try contents(root + "/h"), new)
        XCTAssertEqual(try contents(base + "/other-cluster"), old)
        XCTAssertNotEqual(try inode(root + "/h"), try inode(base + "/other-cluster"))

        // A symbolic link at the name: replaced by the file, its target untouched.
        try Data(old).write(to: URL(fileURLWithPath: base + "/target"))
        XCTAssertEqual(symlink(base + "/target", root + "/l"), 0)
        _ = try restore("l", new)
        XCTAssertEqual(try contents(root + "/l"), new)
        XCTAssertEqual(try contents(base + "/target"), old)
        var st = stat()
        XCTAssertEqual(lstat(root + "/l", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG)
    }

    func testTarReaderReadsGNUAndPaxArchives() throws {
        let dir = NSTemporaryDirectory() + "walctl-tar-" + UUID().uuidString
        let longDir = String(repeating: "d", count: 80) + "/" + String(repeating: "e", count: 60)
        try FileManager.default.createDirectory(atPath: dir + "/src/" + longDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(big).write(to: URL(fileURLWithPath: dir + "/src/" + longDir + "/file"))
        try Data("hi".utf8).write(to: URL(fileURLWithPath: dir + "/src/small"))
        symlink("/somewhere/else", dir + "/src/link")
        for format in ["gnu", "pax", "ustar"] {
            let tarPath = dir + "/a-\(format).tar"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/tar")
            p.arguments = ["--format=\(format)", "-C", dir + "/src", "-cf", tarPath, "."]
            try p.run(); p.waitUntilExit()
            if format == "ustar" { continue }  // ustar cannot hold the 141-byte name; tar refuses it
            XCTAssertEqual(p.terminationStatus, 0)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tarPath)))
            let c = Collector()
            let r = TarReader(visitor: c)
            var i = 0
            while i < bytes.count {
                let n = min(777, bytes.count - i)
                try bytes[i..<(i + n)].withUnsafeBytes { try r.feed($0) }
                i += n
            }
            try r.finish()
            XCTAssertEqual(c.contents[longDir + "/file"], big, format)
            XCTAssertEqual(c.contents["small"], Array("hi".utf8), format)
            let link = c.entries.first { $0.path == "link" }
            XCTAssertEqual(link?.kind, .symlink)
            XCTAssertEqual(link?.linkTarget, "/somewhere/else")
        }
    }

    func testTarReaderRejectsTruncatedAndCorruptArchives() throws {
        var header = [UInt8](repeating: 0, count: 512)
        Array("f".utf8).enumerated().forEach { header[$0.offset] = $0.element }
        for (i, b) in Array("0000644\0".utf8).enumerated() { header[100 + i] = b }
        for (i, b) in Array("00000000012\0".utf8).enumerated() { header[124 + i] = b }
        header[156] = UInt8(ascii: "0")
        for (i, b) in Array("ustar\0".utf8).enumerated() { header[257 + i] = b }
        var sum = 0
        for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
        let ck = String(sum, radix: 8)
        for (i, b) in Array((String(repeating: "0", count: 6 - ck.count) + ck + "\0 ").utf8).enumerated() { header[148 + i] = b }
        // Truncated: header says 10 bytes, 4 come.
        let r = TarReader(visitor: Collector())
        try (header + [1, 2, 3, 4]).withUnsafeBytes { try r.feed($0) }
        XCTAssertThrowsError(try r.finish())
        // Corrupt checksum.
        var bad = header
        bad[0] = UInt8(ascii: "g")
        XCTAssertThrowsError(try bad.withUnsafeBytes { try TarReader(visitor: Collector()).feed($0) })
    }

    func testBaseBackupCommandText() throws {
        var o = BaseBackupOptions(label: "it's")
        o.serverCompression = .zstd(level: 3)
        XCTAssertEqual(try o.command(serverVersion: 150018),
                       "BASE_BACKUP (LABEL 'it''s', CHECKPOINT 'fast', WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=3')")
        XCTAssertThrowsError(try o.command(serverVersion: 140000))
        o.serverCompression = nil
        XCTAssertEqual(try o.command(serverVersion: 140005), "BASE_BACKUP LABEL 'it''s' FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'")
        XCTAssertEqual(PGConnection.parseSize("16MB"), 16 << 20)
        XCTAssertEqual(PGConnection.parseSize("1GB"), 1 << 30)
    }

    func testManifestChecksumTextAndLabels() throws {
        // PostgreSQL prints the CRC's bytes in memory order: 0x12345678 -> "78563412".
        XCTAssertEqual(ServerManifest.crc32cHex(0x1234_5678), "78563412")
        XCTAssertNoThrow(try BackupMetadata.validateLabel("20261126-053012F"))
        for bad in ["", "../x", "a/b", ".hidden", String(repeating: "x", count: 65)] {
            XCTAssertThrowsError(try BackupMetadata.validateLabel(bad), bad)
        }
        XCTAssertEqual(BackupMetadata.makeLabel(Date(timeIntervalSince1970: 0)), "19700101-000000F")
    }
}
