import Foundation
import Testing
import TestSupport
@testable import Storage

/// The store behind `FaultProxy` in front of moto: 500, 503 SlowDown, resets, truncated bodies and
/// slow answers. What was reported stored must read back byte-identically; a read that fails must
/// throw, never return a partial or corrupt body as success.
@Suite(.enabled(if: Moto.enabled), .serialized) struct S3FaultTests {
    struct Rig {
        let moto: Moto
        let proxy: FaultProxy
        let faulty: S3Store
        let direct: S3Store
    }

    func rig(_ change: (inout S3Settings) -> Void = { _ in }) throws -> Rig {
        let moto = try Moto.get()
        let proxy = try FaultProxy(upstreamPort: moto.port)
        let prefix = "f-\(UUID().uuidString.prefix(8))"
        var s = moto.settings(port: proxy.port) { $0.maxRetries = 6; $0.stallTimeout = 1; $0.partSize = 64 << 10 }
        change(&s)
        let faulty = try S3Store.make(bucket: moto.bucket, prefix: prefix, settings: s, environment: [:])
        let direct = try S3Store.make(bucket: moto.bucket, prefix: prefix, settings: moto.settings(), environment: [:])
        return Rig(moto: moto, proxy: proxy, faulty: faulty, direct: direct)
    }

    static let faults: [FaultProxy.Fault] = [
        .status(500, code: "InternalError"), .status(503, code: "SlowDown"), .status(429, code: "TooManyRequests"),
        .resetBeforeResponse, .resetMidBody, .truncateBody, .delay(1.6), .delay(0.2),
    ]

    @Test(arguments: faults) func getSurvives(_ fault: FaultProxy.Fault) throws {
        let r = try rig()
        defer { r.proxy.stop() }
        let data = testBytes(300_000, seed: 7)
        try r.direct.put(key: "wal/seg", bytes: data)
        r.proxy.inject(fault, method: "GET", times: 2)
        #expect(try r.faulty.get(key: "wal/seg") == data)
        // A slow answer within the stall timeout is simply waited for; every other fault costs a retry.
        let expectedGets = fault == .delay(0.2) ? 1 : 3
        #expect(r.proxy.handled.filter { $0.method == "GET" }.count == expectedGets)
    }

    @Test(arguments: faults) func putSurvives(_ fault: FaultProxy.Fault) throws {
        let r = try rig()
        defer { r.proxy.stop() }
        let data = testBytes(200_000, seed: 8)  // 4 parts of 64 KiB: multipart
        r.proxy.inject(fault, method: "PUT", times: 2)
        try putStreaming(r.faulty, key: "base/obj", bytes: data, chunk: 30_000)
        #expect(try r.direct.get(key: "base/obj") == data)
        let small = testBytes(1000, seed: 9)
        r.proxy.inject(fault, method: "PUT", times: 1)
        try r.faulty.put(key: "wal/small", bytes: small)
        #expect(try r.direct.get(key: "wal/small") == small)
        r.proxy.inject(fault, method: "POST", times: 1)  // CreateMultipartUpload / Complete
        try putStreaming(r.faulty, key: "base/obj2", bytes: data, chunk: 65_536)
        #expect(try r.direct.get(key: "base/obj2") == data)
    }

    @Test func retriesAreBoundedThenClear() throws {
        let r = try rig { $0.maxRetries = 2 }
        defer { r.proxy.stop() }
        r.proxy.inject(.status(503, code: "SlowDown"), times: 3)
        var caught: StoreError?
        do { try r.faulty.put(key: "wal/x", bytes: [1]) } catch { caught = error }
        let e = try #require(caught)
        guard case .http(503, "SlowDown", let message, _, let key) = e else { Issue.record("unexpected \(e)"); return }
        #expect(message.contains("gave up after 3 attempts") && key.hasSuffix("wal/x") && e.isTransient)
        #expect(r.proxy.handled.count == 3)
        #expect(try r.direct.head(key: "wal/x") == nil)
    }

    @Test func failedGetNeverReturnsPartialBody() throws {
        let r = try rig { $0.maxRetries = 2 }
        defer { r.proxy.stop() }
        let data = testBytes(500_000, seed: 10)
        try r.direct.put(key: "wal/seg", bytes: data)
        r.proxy.inject(.truncateBody, method: "GET", times: 10)
        var got: [UInt8] = []
        var failed = false
        do { try r.faulty.read(key: "wal/seg") { got.append(contentsOf: $0) } } catch { failed = true }
        #expect(failed, "a read cut off on every attempt must throw")
        #expect(got.count < data.count && Array(data.prefix(got.count)) == got, "bytes delivered before the error are a prefix, never garbage")
        // A reset mid-body resumes with a ranged GET: no duplicated or missing bytes.
        r.proxy.clearFaults()
        r.proxy.inject(.resetMidBody, method: "GET", times: 2)
        got = []
        try r.faulty.read(key: "wal/seg") { got.append(contentsOf: $0) }
        #expect(got == data)
    }

    /// Random faults on a quarter of all requests: every put that reported success reads back
    /// byte-identically, and every get either throws or returns exactly the stored bytes.
    @Test func chaos() throws {
        let r = try rig { $0.maxRetries = 8; $0.uploadThreads = 2 }
        defer { r.proxy.stop() }
        r.proxy.chaos([.status(500, code: "InternalError"), .status(503, code: "SlowDown"), .resetBeforeResponse,
                       .resetMidBody, .truncateBody, .delay(0.05)], probability: 0.25, seed: 42)
        var stored: [String: [UInt8]] = [:]
        for i in 0..<24 {
            let size = [0, 1, 1000, 70_000, 150_000, 300_000][i % 6]
            let data = testBytes(size, seed: UInt64(100 + i))
            let key = "chaos/\(i)"
            do {
                try putStreaming(r.faulty, key: key, bytes: data, chunk: 40_000, options: PutOptions(ifAbsent: i % 2 == 0))
                stored[key] = data
            } catch StoreError.alreadyExists {
                stored[key] = data  // an earlier attempt landed; its answer was lost
            } catch {
                Issue.record("put \(key) failed despite retries: \(error)")
            }
        }
        #expect(stored.count >= 20)
        for (key, data) in stored {
            #expect(try r.direct.get(key: key) == data, "\(key)")
            var got: [UInt8] = []
            do {
                try r.faulty.read(key: key) { got.append(contentsOf: $0) }
                #expect(got == data, "\(key): a successful read must be byte-identical")
            } catch {
                Issue.record("read \(key) failed despite retries: \(error)")
            }
        }
        #expect(r.proxy.handled.filter { $0.fault != .pass }.count > 5)
    }
}
