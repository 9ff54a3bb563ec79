import Foundation
import Testing
import Storage
import TestSupport
import WALFormat
import Codec
@testable import Commands

/// archive-push / archive-get against a FileStore with synthetic WAL.
@Suite struct ArchiveTests {
    let root: String
    let repository: Repository
    let info: RepositoryInfo

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-arch-\(UUID().uuidString)").path
        repository = Repository(store: FileStore(root: root + "/repo"), url: "file://" + root + "/repo")
        info = RepositoryInfo(systemIdentifier: 7_712_321_645_893_095_454, walSegmentSize: WALSegmentSize.default.bytes,
                              pgVersion: 15, createdAt: PGTimestamp(microseconds: 0))
        try repository.bind(info)
    }

    func segment(_ n: XLogSegNo = 1, commits: Int = 3) -> [UInt8] {
        var w = SyntheticWAL(firstSegment: n)
        for i in 0..<commits { _ = w.appendCommit(time: PGTimestamp(microseconds: 848_980_022_115_455 + Int64(i) * 1000)) }
        return w.segment(0)
    }

    func write(_ bytes: [UInt8], name: String) throws -> String {
        let path = root + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test(arguments: CodecKind.allCases)
    func pushThenGetIsByteIdentical(codec: CodecKind) throws {
        let seg = segment()
        let path = try write(seg, name: "000000010000000000000001")
        let outcome = try ArchivePush(repository: repository, codec: codec, level: nil).push(path: path)
        guard case .stored(let meta) = outcome else { Issue.record("not stored: \(outcome)"); return }
        #expect(meta.summary?.commits == 3)
        #expect(meta.codec == codec.rawValue)
        let target = root + "/restored"
        #expect(try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: target) == .restored(meta))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: target))) == seg)
    }

    /// A FileStore that records which keys it was asked to make durable.
    final class DurabilityRecorder: ObjectStore, DurabilityConfirming {
        let inner: FileStore
        var madeDurable: [[String]] = []
        init(_ inner: FileStore) { self.inner = inner }
        var location: String { inner.location }
        func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter { try inner.makeWriter(key: key, options: options) }
        func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws { try inner.read(key: key, into: sink) }
        func head(key: String) throws(StoreError) -> ObjectInfo? { try inner.head(key: key) }
        func list(prefix: String) throws(StoreError) -> [ObjectInfo] { try inner.list(prefix: prefix) }
        func delete(key: String) throws(StoreError) { try inner.delete(key: key) }
        func makeDurable(keys: [String]) throws(StoreError) { madeDurable.append(keys); try inner.makeDurable(keys: keys) }
    }

    /// Exit 0 promises durability also when another push wrote the segment (a crashed attempt, the
    /// winner of a race still before its directory fsync): the re-push syncs object, meta and directory.
    @Test func rePushMakesTheArchivedSegmentDurable() throws {
        let recorder = DurabilityRecorder(FileStore(root: root + "/repo"))
        let repo = Repository(store: recorder, url: "file://" + root + "/repo")
        let path = try write(segment(), name: "000000010000000000000001")
        let push = ArchivePush(repository: repo, codec: .zstd, level: nil)
        guard case .stored(let meta) = try push.push(path: path) else { Issue.record("not stored"); return }
        #expect(recorder.madeDurable.isEmpty)          // its own write synced itself
        guard case .alreadyArchived = try push.push(path: path) else { Issue.record("re-push not recognised"); return }
        #expect(recorder.madeDurable == [[try #require(meta.objectKey), "wal/0000000100000000/000000010000000000000001.meta"]])
    }

    @Test func identicalRePushSucceedsDifferentIsRefused() throws {
        let seg = segment()
        let path = try write(seg, name: "000000010000000000000001")
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil)
        _ = try push.push(path: path)
        guard case .alreadyArchived = try push.push(path: path) else { Issue.record("re-push not recognised"); return }
        var other = segment(commits: 4)
        other[9000] ^= 1
        let otherPath = try write(other, name: "sub/000000010000000000000001")
        #expect(throws: WalctlError.self) { _ = try push.push(path: otherPath) }
        let target = root + "/restored"
        _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: target)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: target))) == seg)
    }

    @Test func objectWithoutMetaIsNotArchived() throws {
        // A crash between the data object and the meta: the object is invisible and a re-push completes.
        let seg = segment()
        let path = try write(seg, name: "000000010000000000000001")
        let crc = seg.withUnsafeBytes { CRC32C.checksum($0) }
        try repository.store.put(key: RepositoryLayout.objectKey(.segment("000000010000000000000001"), crc32c: crc, extension: "zst"), bytes: [0, 1, 2])
        #expect(try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: root + "/x") == .notFound)
        guard case .stored = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: path) else {
            Issue.record("not stored"); return
        }
        _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: root + "/x")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/x"))) == seg)
    }

    @Test func foreignAndMisnamedSegmentsAreRefused() throws {
        var foreign = SyntheticWAL(firstSegment: 1, systemIdentifier: 42)
        _ = foreign.appendCommit(time: PGTimestamp(microseconds: 1))
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil)
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write(foreign.segment(0), name: "000000010000000000000001")) }
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write(segment(1), name: "000000010000000000000002")) }
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write([1, 2, 3], name: "000000010000000000000003")) }
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write([1, 2, 3], name: "notwal")) }
        #expect(try repository.listMetaKeys().isEmpty)
    }

    @Test func historyAndBackupFiles() throws {
        let hist = Array("1\t0/8018F38\tbefore 2026-11-26 03:48:18.888957+00\n\n".utf8)
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil)
        _ = try push.push(path: try write(hist, name: "00000002.history"))
        #expect(throws: WalctlError.self) { _ = try push.push(path: try write(Array("garbage".utf8), name: "00000003.history")) }
        _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "00000002.history", targetPath: root + "/h")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/h"))) == hist)
        #expect(try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "00000004.history", targetPath: root + "/h4") == .notFound)
        #expect(!FileManager.default.fileExists(atPath: root + "/h4"))
    }

    @Test func badNamesNeverTouchTheFilesystem() {
        for bad in ["../000000010000000000000001", "/etc/passwd", "000000010000000000000001/..", "00000001000000000000000g", ""] {
            #expect(throws: WalctlError.self) { _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: bad, targetPath: root + "/bad") }
        }
    }

    @Test func corruptObjectNeverReachesTheTarget() throws {
        let seg = segment()
        _ = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: try write(seg, name: "000000010000000000000001"))
        let meta = try #require(try repository.meta(for: .segment("000000010000000000000001")))
        var stored = try #require(try repository.store.get(key: meta.objectKey!))
        stored[stored.count / 2] ^= 0xFF
        try repository.store.put(key: meta.objectKey!, bytes: stored)
        #expect(throws: WalctlError.self) {
            _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: root + "/t")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/t"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.contains("walctl-tmp") }
        #expect(leftovers.isEmpty)
    }

    @Test func concurrentPushesOfTheSameSegment() throws {
        let seg = segment()
        let path = try write(seg, name: "000000010000000000000001")
        let failures = UnsafeMutableBufferPointer<Int>.allocate(capacity: 6)
        failures.initialize(repeating: 0)
        defer { failures.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            do { _ = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: path) } catch { failures[i] = 1 }
        }
        #expect(failures.reduce(0, +) == 0)
        _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: root + "/c")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/c"))) == seg)
    }

    /// What archive-get leaves in the target's directory besides the target: temporary files.
    func temporaries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.contains(".tmp.") }
    }

    /// archive-get decodes a segment into buffers a second thread writes behind the decoding
    /// (ObjectReader.restore): the bytes are those of the streaming path, and any object that does
    /// not decode to exactly the meta's bytes (other content of the same size, more bytes, fewer,
    /// cut short) is refused with nothing at the target and no temporary file left.
    @Test func directRestoreRefusesEveryWrongObject() throws {
        let seg = segment(commits: 40)
        _ = try ArchivePush(repository: repository, codec: .zstd, level: nil).push(path: try write(seg, name: "000000010000000000000001"))
        let meta = try #require(try repository.meta(for: .segment("000000010000000000000001")))
        #expect(meta.size >= ObjectReader.writeBehindMinimum)   // the direct path, not the fallback
        let target = root + "/direct"
        #expect(try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: target) == .restored(meta))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: target))) == seg)
        try FileManager.default.removeItem(atPath: target)

        let original = try #require(try repository.store.get(key: meta.objectKey!))
        func zstd(_ bytes: [UInt8]) throws -> [UInt8] {
            let c = try CodecKind.zstd.makeCompressor()
            var out: [UInt8] = []
            try bytes.withUnsafeBytes { try c.update($0) { out.append(contentsOf: $0) } }
            try c.finish { out.append(contentsOf: $0) }
            return out
        }
        var other = seg
        other[seg.count - 100] ^= 1                       // one bit of the last megabyte
        let wrong: [(String, [UInt8])] = [
            ("same size, other bytes", try zstd(other)),
            ("one byte more", try zstd(seg + [0])),
            ("one byte less", try zstd(Array(seg.dropLast()))),
            ("cut short", Array(original.dropLast(original.count / 3))),
            ("empty", []),
        ]
        for (what, bytes) in wrong {
            try repository.store.put(key: meta.objectKey!, bytes: bytes)
            #expect(throws: WalctlError.self, "\(what)") {
                _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: target)
            }
            #expect(!FileManager.default.fileExists(atPath: target), "\(what)")
            #expect(try temporaries().isEmpty, "\(what)")
        }
        try repository.store.put(key: meta.objectKey!, bytes: original)
        _ = try ArchiveGet(repository: repository, retryTime: 0).get(fileName: "000000010000000000000001", targetPath: target)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: target))) == seg)
    }
}
