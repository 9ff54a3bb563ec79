import Foundation
import Testing
@testable import Storage

/// The repository root, found from this file's path (tests never read outside the repository).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// True when tests that need external tools must fail rather than be skipped.
let requireExternal = ProcessInfo.processInfo.environment["CI"] != nil

/// One moto server per test process, started by `scripts/moto-server.py` with signature checking on
/// and a 1 KiB minimum part size. It exits when this process ends (its stdin pipe closes) and after
/// one hour at most.
final class Moto: @unchecked Sendable {
    let port: UInt16
    let bucket: String
    let env: [String: String]
    let process: Process
    let stdin: Pipe
    let logFile: String

    /// The shared server, or why it could not start.
    static let shared: Result<Moto, any Error> = Result { try Moto.start() }

    /// Enables moto tests when the server runs, and always under CI (so they fail there).
    static var enabled: Bool { requireExternal || (try? shared.get()) != nil }

    static func get() throws -> Moto { try shared.get() }

    struct MotoError: Error, CustomStringConvertible { var description: String }

    private init(port: UInt16, bucket: String, env: [String: String], process: Process, stdin: Pipe, logFile: String) {
        self.port = port; self.bucket = bucket; self.env = env; self.process = process; self.stdin = stdin; self.logFile = logFile
    }

    static func start() throws(MotoError) -> Moto {
        let dir = NSTemporaryDirectory() + "walctl-moto-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let envFile = dir + "/moto.env"
        let logFile = dir + "/moto.log"
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/moto-server.py").path,
                       "--port", "0", "--bucket", "walctl-test", "--env-file", envFile, "--part-min-size", "1024"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle(forWritingAtPath: logFile)
        do { try p.run() } catch { throw MotoError(description: "cannot run python3 scripts/moto-server.py: \(error)") }
        // Wait for the READY line, at most 60 s.
        let ready = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var line = "" }
        let box = Box()
        let reader = output.fileHandleForReading
        Thread {
            var acc = Data()
            while true {
                let d = reader.availableData
                if d.isEmpty { break }
                acc += d
                if let s = String(data: acc, encoding: .utf8), s.contains("\n") { box.line = s; break }
            }
            ready.signal()
        }.start()
        if ready.wait(timeout: .now() + 60) == .timedOut || !box.line.hasPrefix("READY") {
            p.terminate()
            let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            throw MotoError(description: "moto did not start: \(box.line) \(log.suffix(2000))")
        }
        var env: [String: String] = [:]
        let text = (try? String(contentsOfFile: envFile, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let kv = line.dropFirst(7)
            guard let eq = kv.firstIndex(of: "=") else { continue }
            env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...]).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        }
        guard let portText = env["MOTO_PORT"], let port = UInt16(portText) else {
            throw MotoError(description: "moto env file incomplete: \(envFile)")
        }
        return Moto(port: port, bucket: env["MOTO_BUCKET"] ?? "walctl-test", env: env, process: p, stdin: input, logFile: logFile)
    }

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Settings for this server (path style, its key), adjusted by `change`.
    func settings(port: UInt16? = nil, _ change: (inout S3Settings) -> Void = { _ in }) -> S3Settings {
        var s = S3Settings(endpoint: "http://127.0.0.1:\(port ?? self.port)", region: "us-east-1", uriStyle: .path,
                           key: env["AWS_ACCESS_KEY_ID"], keySecret: env["AWS_SECRET_ACCESS_KEY"],
                           partSize: 5 << 20, maxRetries: 3, retryBaseDelay: 0.01, retryMaxDelay: 0.2)
        change(&s)
        return s
    }

    /// A store under a fresh prefix, so tests running in parallel never see each other's keys.
    func store(port: UInt16? = nil, _ change: (inout S3Settings) -> Void = { _ in }) throws -> S3Store {
        try S3Store.make(bucket: bucket, prefix: "t-\(UUID().uuidString.prefix(8))", settings: settings(port: port, change), environment: [:])
    }
}

/// Runs a command with a deadline; returns status and stdout (stderr appended on failure).
func runProcess(_ args: [String], environment: [String: String]? = nil, input: String? = nil, timeout: Double = 120) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try? inp.fileHandleForWriting.close()
    final class Box: @unchecked Sendable { var out = Data(); var err = Data() }
    let box = Box()
    let g = DispatchGroup()
    g.enter(); Thread { box.out = out.fileHandleForReading.readDataToEndOfFile(); g.leave() }.start()
    g.enter(); Thread { box.err = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }.start()
    if g.wait(timeout: .now() + timeout) == .timedOut { p.terminate() }
    p.waitUntilExit()
    let o = String(decoding: box.out, as: UTF8.self)
    return (p.terminationStatus, p.terminationStatus == 0 ? o : o + String(decoding: box.err, as: UTF8.self))
}

/// Deterministic test bytes.
func testBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8](repeating: 0, count: n)
    for i in 0..<n {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        out[i] = UInt8(truncatingIfNeeded: x)
    }
    return out
}

/// Uploads through the streaming writer in chunks of `chunk` bytes.
func putStreaming(_ store: ObjectStore, key: String, bytes: [UInt8], chunk: Int, options: PutOptions = .init()) throws {
    let w = try store.makeWriter(key: key, options: options)
    do {
        var off = 0
        while off < bytes.count {
            let end = min(bytes.count, off + chunk)
            try bytes[off..<end].withUnsafeBytes { try w.write($0) }
            off = end
        }
        try w.commit()
    } catch {
        w.abort()
        throw error
    }
}

/// Multipart uploads still open under `key` (should be none after commit or abort).
func openUploads(_ store: S3Store, key: String) throws -> [String] {
    let r = try store.send(S3Store.Call(method: "GET", key: nil, query: [("uploads", ""), ("prefix", store.objectKey(key))]), displayKey: key)
    return S3XML.values(String(decoding: r.body, as: UTF8.self)[...], "UploadId")
}
