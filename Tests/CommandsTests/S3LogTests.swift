import Foundation
import Logging
import Testing
import TestSupport
@testable import Commands
@testable import Storage

/// The repository factory gives the S3 store walctl's logger (from `log-level`), so a retried request
/// is one `walctl: ...` warning line on stderr whichever command opened the repository. (The
/// factory used to leave it unset: retries were silent.)
@Suite(.serialized) struct S3LogTests {
    /// Runs `body` with file descriptor 2 sent to a temporary file; returns what was written there.
    func capturingStandardError(_ body: () throws -> Void) rethrows -> String {
        let path = NSTemporaryDirectory() + "walctl-stderr-" + UUID().uuidString
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
        let saved = dup(2)
        dup2(fd, 2)
        defer {
            dup2(saved, 2); close(saved); close(fd)
            unlink(path)
        }
        try body()
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    func config(port: UInt16, _ extra: [String: String] = [:]) throws -> Configuration {
        var flags = ["repository": "s3://walctl-test/logs", "s3-endpoint": "http://127.0.0.1:\(port)",
                     "s3-key": "k", "s3-key-secret": "s", "s3-retries": "2", "s3-uri-style": "path"]
        flags.merge(extra) { $1 }
        return try Configuration.load(flags: flags, environment: [:], configPath: "/dev/null")
    }

    @Test func aRetryIsAWarningLineOnStandardError() throws {
        // Every request is answered 503 SlowDown by the proxy itself (nothing behind it).
        let proxy = try FaultProxy(upstreamPort: 1)
        defer { proxy.stop() }
        proxy.inject(.status(503, code: "SlowDown"), times: 3)
        let repository = try RepositoryFactory.open(try config(port: proxy.port))
        let text = capturingStandardError {
            #expect(throws: StoreError.self) { _ = try repository.store.head(key: "repository.json") }
        }
        let retries = text.split(separator: "\n").filter { $0.hasPrefix("walctl: S3 request failed, retrying") }
        #expect(retries.count == 2, "stderr was: \(text)")
        #expect(retries.first?.contains("503") == true && retries.first?.contains("attempt=1") == true, "\(retries)")
        #expect(!text.contains("k-secret") && !text.contains("s3-key-secret"))
    }

    @Test func logLevelErrorSilencesRetries() throws {
        let proxy = try FaultProxy(upstreamPort: 1)
        defer { proxy.stop() }
        proxy.inject(.status(503, code: "SlowDown"), times: 3)
        let repository = try RepositoryFactory.open(try config(port: proxy.port, ["log-level": "error"]))
        let text = capturingStandardError {
            #expect(throws: StoreError.self) { _ = try repository.store.head(key: "repository.json") }
        }
        #expect(!text.contains("retrying"), "stderr was: \(text)")
    }

    @Test func aSlowRequestIsAWarning() throws {
        let proxy = try FaultProxy(upstreamPort: 1)
        defer { proxy.stop() }
        proxy.inject(.status(404, code: "NoSuchKey"), times: 1)
        let repository = try RepositoryFactory.open(try config(port: proxy.port))
        let store = try #require(repository.store as? S3Store)
        store.slowRequestWarning = 0
        let text = capturingStandardError { _ = try? store.head(key: "repository.json") }
        #expect(text.contains("walctl: S3 request slow: HEAD"), "stderr was: \(text)")
    }
}
