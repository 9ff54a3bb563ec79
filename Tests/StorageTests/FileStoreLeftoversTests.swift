import Foundation
import Testing
@testable import Storage

/// Issue 12 (leftovers): temporary objects of interrupted writes are removed once old enough, and
/// nothing else is.
@Suite struct FileStoreLeftoversTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-leftovers-\(UUID().uuidString)").path

    func make(_ path: String, age: TimeInterval) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 100))
        if age > 0 { try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: path) }
    }

    @Test func removesOnlyOldTemporaryObjectsInTheKeysDirectory() throws {
        let store = FileStore(root: root)
        let dir = root + "/wal/0000000100000000"
        // What the writer leaves when it is killed between fsync and link/rename.
        let w = try store.makeWriter(key: "wal/0000000100000000/x.meta", options: PutOptions())
        try [1, 2, 3].withUnsafeBytes { try w.write($0) }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        let temp = try #require(names.first)
        #expect(FileStore.isTemporaryName(temp), "the writer's temporary name \(temp) is not recognised")
        w.abort()
        try make(dir + "/.000000010000000000000003.1c2b3a4d.zst.tmp.77.a", age: 7200)
        try make(dir + "/.000000010000000000000003.meta.tmp.77.b", age: 7200)
        try make(dir + "/.000000010000000000000004.meta.tmp.78.c", age: 60)        // a push in progress
        try make(dir + "/000000010000000000000003.meta", age: 7200)                // an object
        try make(dir + "/.hidden-but-not-temporary", age: 7200)
        try make(root + "/wal/0000000100000001/.000000010000000100000000.meta.tmp.1.d", age: 7200)  // another directory
        let removed = store.removeLeftovers(besideKey: "wal/0000000100000000/000000010000000000000010.meta", olderThan: 3600)
        #expect(Set(removed) == [".000000010000000000000003.1c2b3a4d.zst.tmp.77.a", ".000000010000000000000003.meta.tmp.77.b"])
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        #expect(left == [".000000010000000000000004.meta.tmp.78.c", "000000010000000000000003.meta", ".hidden-but-not-temporary"])
        #expect(FileManager.default.fileExists(atPath: root + "/wal/0000000100000001/.000000010000000100000000.meta.tmp.1.d"))
        // A directory that does not exist is no failure.
        #expect(store.removeLeftovers(besideKey: "wal/nowhere/x", olderThan: 0).isEmpty)
        try? FileManager.default.removeItem(atPath: root)
    }

    /// The cost a sweeping push pays: one readdir of a full directory (256 segments and their metas).
    /// Printed, not asserted (performance targets live in Benchmarks/).
    @Test func sweepOfAFullDirectoryIsOneReaddir() throws {
        let store = FileStore(root: root)
        let dir = root + "/wal/0000000100000000"
        for i in 0..<256 {
            let n = "000000010000000000" + String(format: "%06X", i)
            try make(dir + "/" + n + ".1c2b3a4d.zst", age: 0)
            try make(dir + "/" + n + ".meta", age: 0)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let rounds = 100
        for _ in 0..<rounds { _ = store.removeLeftovers(besideKey: "wal/0000000100000000/x", olderThan: 3600) }
        let us = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(rounds) / 1000
        print("leftover sweep of a 512-entry directory: \(String(format: "%.1f", us)) µs")
        try? FileManager.default.removeItem(atPath: root)
    }
}
