import Foundation
import Testing
@testable import Storage

/// An in-memory store that deletes in batches and fails chosen keys a number of times.
final class FlakyBatchStore: ObjectStore, BatchDeleting {
    var objects: Set<String> = []
    var failures: [String: (times: Int, error: StoreError)] = [:]
    var batches: [[String]] = []
    let location = "memory://"
    var deleteBatchLimit: Int { 3 }
    func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter { throw .configuration("unused") }
    func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws { throw StoreError.notFound(key: key) }
    func head(key: String) throws(StoreError) -> ObjectInfo? { objects.contains(key) ? ObjectInfo(key: key, size: 1) : nil }
    func list(prefix: String) throws(StoreError) -> [ObjectInfo] { objects.filter { $0.hasPrefix(prefix) }.sorted().map { ObjectInfo(key: $0, size: 1) } }
    func delete(key: String) throws(StoreError) { objects.remove(key) }
    func deleteBatch(_ keys: [String]) throws(StoreError) -> [(key: String, error: StoreError)] {
        batches.append(keys)
        var failed: [(key: String, error: StoreError)] = []
        for k in keys {
            if let f = failures[k], f.times > 0 { failures[k] = (f.times - 1, f.error); failed.append((k, f.error)); continue }
            objects.remove(k)
        }
        return failed
    }
}

@Suite struct BatchDeleteTests {
    @Test func batchesOfTheLimitAndOnlyFailedKeysAgain() throws {
        let s = FlakyBatchStore()
        let keys = (0..<7).map { "k\($0)" }
        s.objects = Set(keys)
        s.failures["k4"] = (1, .http(status: 503, code: "SlowDown", message: "", bucket: "b", key: "k4"))
        var count = DeletionCount()
        try s.deleteAll(keys, count: &count)
        #expect(s.objects.isEmpty)
        #expect(s.batches == [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k4"], ["k6"]])
        #expect(count.objects == 7 && count.requests == 4)
    }

    @Test func aPermanentFailureStops() {
        let s = FlakyBatchStore()
        s.objects = ["a", "b"]
        s.failures["a"] = (99, .http(status: 403, code: "AccessDenied", message: "", bucket: "b", key: "a"))
        var count = DeletionCount()
        #expect(throws: StoreError.http(status: 403, code: "AccessDenied", message: "", bucket: "b", key: "a")) { try s.deleteAll(["a", "b"], count: &count) }
        #expect(s.batches.count == 1)
    }

    @Test func aTransientFailureGivesUpAfterTheRetries() {
        let s = FlakyBatchStore()
        s.objects = ["a"]
        s.failures["a"] = (99, .http(status: 500, code: "InternalError", message: "", bucket: "b", key: "a"))
        var count = DeletionCount()
        #expect(throws: StoreError.self) { try s.deleteAll(["a"], retries: 2, count: &count) }
        #expect(s.batches.count == 3)
    }
}

extension S3StoreTests {
    @Test func deleteObjectsInBatchesOf1000() throws {
        let store = try Moto.get().store()
        let keys = (0..<2100).map { String(format: "batch/%05d", $0) } + ["batch/odd+k ey", "batch/missing"]
        for k in keys.dropLast() { try store.put(key: k, bytes: [1]) }
        try store.put(key: "keep/x", bytes: [2])
        var count = DeletionCount()
        try store.deleteAll(keys, count: &count)
        #expect(count.requests == 3 && count.objects == keys.count)
        #expect(try store.list(prefix: "batch/").isEmpty)
        #expect(try store.head(key: "keep/x") != nil)
    }
}
