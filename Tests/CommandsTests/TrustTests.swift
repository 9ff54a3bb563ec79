import Foundation
import Testing
import Storage
import WALFormat
@testable import Commands

/// Issue 12: archive-get's exit-1 rule (positive evidence), settings validated at load, targets.
@Suite final class ExitOneRuleTests {
    let root: String
    deinit { try? FileManager.default.removeItem(atPath: root) }
    let repository: Repository
    let sysid: UInt64 = 7_712_321_645_893_095_454
    static let absent = "000000010000000A00000001"

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-trust-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        repository = Repository(store: FileStore(root: root + "/repo"), url: "file://" + root + "/repo")
        try repository.bind(RepositoryInfo(systemIdentifier: sysid, walSegmentSize: WALSegmentSize.default.bytes,
                                           pgVersion: 15, createdAt: PGTimestamp(microseconds: 0)))
    }

    /// A data directory whose `global/pg_control` starts with `id` (little-endian).
    func dataDirectory(systemIdentifier id: UInt64) throws -> String {
        let dir = root + "/data-\(id)"
        try FileManager.default.createDirectory(atPath: dir + "/global", withIntermediateDirectories: true)
        var le = id.littleEndian
        let bytes = Data(bytes: &le, count: 8) + Data(count: 8184)
        try bytes.write(to: URL(fileURLWithPath: dir + "/global/pg_control"))
        return dir
    }

    func get(_ r: Repository, _ name: String = absent, cluster: String? = nil, plan: String? = nil) throws -> GetOutcome {
        try ArchiveGet(repository: r, retryTime: 0, clusterDirectory: cluster, planPath: plan).get(fileName: name, targetPath: root + "/out")
    }

    func expectCode(_ code: String, _ body: () throws -> Void) {
        do { try body(); Issue.record("no error; expected [\(code)]") } catch let e as WalctlError {
            #expect(e.code == code, "\(e)")
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func absentFromAHealthyBoundRepositoryIsNotFound() throws {
        #expect(try get(repository) == .notFound)
        #expect(try get(repository, "00000002.history") == .notFound)
        #expect(try get(repository, cluster: try dataDirectory(systemIdentifier: sysid)) == .notFound)
    }

    @Test func missingRootIsNeverNotFound() throws {
        try FileManager.default.moveItem(atPath: root + "/repo", toPath: root + "/repo.gone")
        expectCode("absence-unconfirmed") { _ = try get(repository) }
        expectCode("absence-unconfirmed") { _ = try get(repository, "00000002.history") }
    }

    @Test func emptyAndRootRepositoriesAreNeverNotFound() throws {
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        expectCode("absence-unconfirmed") { _ = try get(Repository(store: FileStore(root: root + "/empty"), url: "file://" + root + "/empty")) }
        expectCode("absence-unconfirmed") { _ = try get(Repository(store: FileStore(root: "/"), url: "file:///")) }
    }

    @Test func anotherClustersRepositoryIsNeverNotFound() throws {
        let other = try dataDirectory(systemIdentifier: sysid + 1)
        expectCode("absence-unconfirmed") { _ = try get(repository, cluster: other) }
    }

    @Test func unreadableBindingOrPlanIsNeverNotFound() throws {
        try Data("not json".utf8).write(to: URL(fileURLWithPath: root + "/repo/repository.json"))
        expectCode("absence-unconfirmed") { _ = try get(repository) }
    }

    @Test func unreadablePlanIsNeverNotFoundForASegment() throws {
        let plan = root + "/walctl_recovery_plan.json"
        try Data("{".utf8).write(to: URL(fileURLWithPath: plan))
        expectCode("absence-unconfirmed") { _ = try get(repository, plan: plan) }
        // History files are not planned segments: absent is absent.
        #expect(try get(repository, "00000002.history", plan: plan) == .notFound)
    }

    @Test func failuresAreRetriedThenReported() throws {
        try FileManager.default.moveItem(atPath: root + "/repo", toPath: root + "/repo.gone")
        let start = Date()
        #expect(throws: WalctlError.self) {
            _ = try ArchiveGet(repository: repository, retryTime: 0.5).get(fileName: Self.absent, targetPath: root + "/out")
        }
        #expect(Date().timeIntervalSince(start) >= 0.4)
    }

    @Test func recoveryContextFindsTheDataDirectory() throws {
        let dir = try dataDirectory(systemIdentifier: sysid)
        #expect(ArchiveGet.recoveryContext(directory: dir).clusterDirectory == dir)
        #expect(ArchiveGet.recoveryContext(directory: dir).planPath == nil)
        #expect(ArchiveGet.recoveryContext(directory: root).clusterDirectory == nil)
        #expect(ArchiveGet.systemIdentifier(pgControl: dir + "/global/pg_control") == sysid)
    }

    @Test func everyErrorCodeIsDocumented() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/errors.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        for code in WalctlError.codes { #expect(text.contains("| `\(code)` |"), "docs/errors.md lacks \(code)") }
        let samples: [WalctlError] = [.usage("x"), .absenceUnconfirmed(file: "f", repository: "r", reason: "w"),
                                      .plannedSegmentMissing(file: "f", repository: "r", planPath: "p", range: "a..b"),
                                      .refused("x"), .configuration(.missing(name: "repository"))]
        for e in samples { #expect(WalctlError.codes.contains(e.code)) }
    }
}

@Suite struct SettingsValidationTests {
    func load(_ flags: [String: String] = [:], file: String? = nil, env: [String: String] = [:]) throws(ConfigurationError) -> Configuration {
        var path = "/dev/null"
        if let file {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-conf-\(UUID().uuidString)").path
            try? Data(file.utf8).write(to: URL(fileURLWithPath: path))
        }
        return try Configuration.load(flags: flags, environment: env, configPath: path)
    }

    @Test(arguments: [
        ("log-level", "verbose"), ("archive-get-on-error", "ignore"), ("archive-workers", "-1"), ("archive-workers", "0"),
        ("archive-push-timeout", "-5"), ("s3-part-size", "0"), ("archive-spool-max", "99999999999999999999"),
        ("archive-async", "maybe"), ("restore-prefetch", "+3"), ("s3-uri-style", "virtual"),
        ("repository", "s3://bucket/../../etc"), ("repository", "s3://bucket/a/./b"), ("repository", "s3://bucket/.."),
        ("repository", "s3:///prefix"), ("repository", "relative/path"), ("repository", "file://relative"),
        ("s3-endpoint", "http://198.51.100.7:9000"), ("s3-endpoint", "ftp://x"), ("compress-level", "25"),
    ])
    func badValuesAreRefusedAtLoad(name: String, value: String) {
        do {
            _ = try load([name: value])
            Issue.record("\(name) = \(value) accepted")
        } catch {
            let text = error.description
            #expect(text.contains("setting \(name) = \"\(value)\""), "\(text)")
            #expect(text.contains("(from --\(name))"), "\(text)")
            #expect(text.contains("expected"), "\(text)")
        }
    }

    @Test func goodValuesLoad() throws {
        let c = try load(["log-level": "DEBUG", "archive-workers": "64", "s3-part-size": "5242880", "repository": "s3://bucket/a.b/c..d",
                          "s3-endpoint": "http://127.0.0.1:9000", "archive-async": "On", "compress-type": "gzip", "compress-level": "9"])
        #expect(c.logLevel == "debug")
        #expect(try c.int(.archiveWorkers) == 64)
        #expect(try c.bool(.archiveAsync))
        #expect(try load(["s3-endpoint": "http://minio.internal:9000", "s3-allow-http": "true"])[.s3Endpoint] == "http://minio.internal:9000")
        #expect(try load(["s3-endpoint": "http://localhost:9000"])[.s3Endpoint] == "http://localhost:9000")
    }

    @Test func sourcesAreNamed() {
        #expect(throws: ConfigurationError.invalidValue(name: "log-level", value: "verbose", expected: Setting.logLevel.type.allowed,
                                                        source: "WALCTL_LOG_LEVEL")) {
            _ = try load(env: ["WALCTL_LOG_LEVEL": "verbose"])
        }
        do {
            _ = try load(file: "repository = file:///x\nlog-level = verbose\n")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("line 2) is invalid: expected one of error, warning, info, debug"), "\(error)")
        }
    }

    @Test func inlineCommentsAreStripped() throws {
        let c = try load(file: "repository = file:///x   # my repo\ncatalog = /c.db\t# tab\ns3-key-secret = \"a #b\"  # quoted\ns3-region = # nothing\n")
        #expect(c[.repository] == "file:///x")
        #expect(c[.catalog] == "/c.db")
        #expect(c[.s3KeySecret] == "a #b")
        #expect(c[.s3Region] == nil || c[.s3Region] == "us-east-1")
        #expect(throws: ConfigurationError.self) { _ = try load(file: "repository = \"file:///x\n") }
        // `#` not after a blank is part of the value.
        var d = Configuration()
        try d.apply(fileText: "s3-key = ab#cd", path: "f")
        #expect(d[.s3Key] == "ab#cd")
    }
}

@Suite struct TargetTimeTests {
    @Test(arguments: ["2026-11-31 10:48:08+00", "2026-02-30 10:00:00+00", "2025-02-29 10:00:00Z", "2026-11-20 10:48:08+99",
                      "2026-11-20 10:48:08-99:00", "2026-11-20 10:48:08+16:00", "2026-13-01 00:00:00+00", "2026-11-20 24:00:00+00",
                      "2026-11-20 10:48:08+05:60"])
    func impossibleTimesAreRefused(text: String) {
        #expect(throws: WalctlError.self) { _ = try TargetTime.parse(text, zone: nil) }
        #expect(TargetTime.impossibility(text) != nil)
    }

    @Test func possibleTimesParse() throws {
        #expect(try TargetTime.parse("2024-02-29 10:00:00+00", zone: nil) == PGTimestamp(parsing: "2024-02-29 10:00:00+00"))
        #expect(try TargetTime.parse("2026-11-20 10:48:08-15:59", zone: nil) == PGTimestamp(parsing: "2026-11-20 10:48:08-15:59"))
        let west = try TargetTime.parse("2026-11-20 10:48:08", zone: "-05:00")
        #expect(west == PGTimestamp(parsing: "2026-11-20 15:48:08+00"))
        #expect(throws: WalctlError.self) { _ = try TargetTime.parse("2026-11-20 10:48:08", zone: "-99:00") }
    }
}
