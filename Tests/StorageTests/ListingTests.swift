import Foundation
import Testing
@testable import Storage

/// `DetailedListing` (issue 12): the directory names under a prefix, and a listing that shows
/// temporary objects with their modification times, on a file system and on S3.
@Suite struct FileListingTests {
    @Test func childPrefixesAndHiddenObjects() throws {
        let root = NSTemporaryDirectory() + "walctl-listing-" + UUID().uuidString
        let store = FileStore(root: root)
        let repository = Repository(store: store, url: "file://" + root)
        for k in ["wal/0000000100000000/a.meta", "wal/0000000100000001/b.meta", "wal/history/00000002.history.meta", "wal/junk/x"] {
            try store.put(key: k, bytes: [1])
        }
        FileManager.default.createFile(atPath: root + "/wal/0000000100000001/.b.1234.zst.tmp.9.x", contents: Data([1, 2]))
        #expect(try store.childPrefixes(of: "wal/") == ["wal/0000000100000000/", "wal/0000000100000001/", "wal/history/", "wal/junk/"])
        #expect(try repository.walDirectories() == ["wal/0000000100000000/", "wal/0000000100000001/"])
        #expect(try store.list(prefix: "wal/0000000100000001/").map(\.key) == ["wal/0000000100000001/b.meta"])
        let detailed = try repository.listDetailed(prefix: "wal/0000000100000001/")
        #expect(detailed.map(\.key) == ["wal/0000000100000001/.b.1234.zst.tmp.9.x", "wal/0000000100000001/b.meta"])
        #expect(detailed.allSatisfy { $0.modified.map { abs($0.timeIntervalSinceNow) < 600 } == true })
        #expect(TemporaryObjects.isTemporary(detailed[0].key) && !TemporaryObjects.isTemporary(detailed[1].key))
        #expect(Repository.walDirectoryName("wal/000000020000000A/")! == (2, 10))
        #expect(Repository.walDirectoryName("wal/history/") == nil)
    }
}

@Suite(.enabled(if: Moto.enabled)) struct S3ListingTests {
    @Test func childPrefixesAcrossPagesAndLastModified() throws {
        let store = try Moto.get().store()
        store.listMaxKeys = 3
        let dirs = (0..<8).map { String(format: "wal/00000001%08X/", $0) }
        for d in dirs { try store.put(key: d + "x.meta", bytes: [1]); try store.put(key: d + "x.1.zst", bytes: [1, 2]) }
        try store.put(key: "wal/history/00000002.history.meta", bytes: [1])
        #expect(try store.childPrefixes(of: "wal/") == dirs + ["wal/history/"])
        #expect(try Repository(store: store, url: store.location).walDirectories() == dirs)
        let l = try store.listDetailed(prefix: dirs[3])
        #expect(l.map(\.key) == [dirs[3] + "x.1.zst", dirs[3] + "x.meta"])
        #expect(l.map(\.size) == [2, 1])
        #expect(l.allSatisfy { $0.modified.map { abs($0.timeIntervalSinceNow) < 600 } == true })
    }

    @Test func lastModifiedParsing() {
        #expect(S3Store.parseTime("2026-11-30T12:34:56.250Z")?.timeIntervalSince1970 == 1_796_042_096.25)
        #expect(S3Store.parseTime("1970-01-01T00:00:00Z")?.timeIntervalSince1970 == 0)
        #expect(S3Store.parseTime("2024-02-29T23:59:59.000Z")?.timeIntervalSince1970 == 1_709_251_199)
        #expect(S3Store.parseTime("not a time at all") == nil)
    }
}
