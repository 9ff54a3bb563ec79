import Foundation
import Testing
@testable import Storage

@Suite struct FileStoreTests {
    let root: String
    let store: FileStore

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-fs-\(UUID().uuidString)").path
        store = FileStore(root: root)
    }

    @Test func putGetHeadListDelete() throws {
        try store.put(key: "wal/0000000100000000/a.zst", bytes: [1, 2, 3])
        try store.put(key: "wal/0000000100000000/b.meta", bytes: Array(repeating: 7, count: 3 << 20))
        try store.put(key: "wal/history/00000002.history.zst", bytes: [9])
        #expect(try store.get(key: "wal/0000000100000000/a.zst") == [1, 2, 3])
        #expect(try store.get(key: "wal/0000000100000000/b.meta")?.count == 3 << 20)
        #expect(try store.head(key: "wal/0000000100000000/b.meta")?.size == Int64(3 << 20))
        #expect(try store.head(key: "wal/nothing") == nil)
        #expect(try store.get(key: "wal/nothing") == nil)
        #expect(try store.list(prefix: "wal/").map(\.key) == [
            "wal/0000000100000000/a.zst", "wal/0000000100000000/b.meta", "wal/history/00000002.history.zst",
        ])
        #expect(try store.list(prefix: "wal/0000000100000000/b").map(\.key) == ["wal/0000000100000000/b.meta"])
        try store.delete(key: "wal/0000000100000000/a.zst")
        try store.delete(key: "wal/0000000100000000/a.zst")  // missing: not an error
        #expect(try store.get(key: "wal/0000000100000000/a.zst") == nil)
    }

    @Test func ifAbsentNeverReplaces() throws {
        try store.put(key: "k", bytes: [1], options: PutOptions(ifAbsent: true))
        #expect(throws: StoreError.alreadyExists(key: "k")) {
            try store.put(key: "k", bytes: [2], options: PutOptions(ifAbsent: true))
        }
        #expect(try store.get(key: "k") == [1])
        try store.put(key: "k", bytes: [3])
        #expect(try store.get(key: "k") == [3])
    }

    @Test func abortedWriterLeavesNothing() throws {
        let w = try store.makeWriter(key: "dir/x", options: PutOptions())
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { bytes.deallocate() }
        try w.write(UnsafeRawBufferPointer(bytes))
        w.abort()
        #expect(try store.get(key: "dir/x") == nil)
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/dir")
        #expect(names.isEmpty, "temporary files left: \(names)")
    }

    @Test func listSkipsTemporaryFiles() throws {
        let w = try store.makeWriter(key: "d/y", options: PutOptions())
        #expect(try store.list(prefix: "d/").isEmpty)
        try w.commit()
        #expect(try store.list(prefix: "d/").map(\.key) == ["d/y"])
    }

    @Test func concurrentIfAbsentWritersOneWins() throws {
        let results = UnsafeMutableBufferPointer<Int>.allocate(capacity: 8)
        results.initialize(repeating: 0)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                try store.put(key: "race", bytes: [UInt8(i)], options: PutOptions(ifAbsent: true))
                results[i] = 1
            } catch { results[i] = 2 }
        }
        #expect(results.filter { $0 == 1 }.count == 1)
        #expect(results.filter { $0 == 2 }.count == 7)
    }
}
