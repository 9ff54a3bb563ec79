import Foundation

/// The outcome of one finished child process.
public struct ProcessResult: Sendable {
    /// The command line, for messages.
    public var command: [String]
    /// Exit status, or the signal number when `terminatedBySignal` is true.
    public var status: Int32
    public var terminatedBySignal: Bool
    public var stdout: String
    public var stderr: String
    /// True when the process was killed because it outlived its timeout.
    public var timedOut: Bool

    /// Exit status 0 and not killed.
    public var succeeded: Bool { status == 0 && !terminatedBySignal && !timedOut }
}

/// A child process that did not succeed, with everything needed to see why.
public struct ProcessFailure: Error, CustomStringConvertible {
    public var result: ProcessResult
    public var description: String {
        let how = result.timedOut ? "timed out" :
            result.terminatedBySignal ? "was killed by signal \(result.status)" : "exited with status \(result.status)"
        return "`\(result.command.joined(separator: " "))` \(how)\nstdout:\n\(result.stdout.suffix(4000))\nstderr:\n\(result.stderr.suffix(4000))"
    }
}

extension Process {
    /// Runs `executable` with `arguments` and waits for it, capturing stdout and stderr.
    ///
    /// Output goes through temporary files rather than pipes, so a chatty child can never block on a
    /// full pipe. The child is killed (SIGKILL) if it runs longer than `timeout` seconds.
    ///
    /// - Parameters:
    ///   - executable: absolute path of the program.
    ///   - arguments: its arguments, passed as they are (no shell).
    ///   - environment: extra variables on top of the current environment.
    ///   - currentDirectory: working directory, or the current one.
    ///   - input: bytes written to the child's stdin (empty stdin when nil).
    ///   - timeout: seconds before the child is killed.
    /// - Returns: the result, whatever the exit status (see `runChecked` to throw on failure).
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        currentDirectory: String? = nil,
        input: String? = nil,
        timeout: TimeInterval = 300
    ) throws -> ProcessResult {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("walctl-run-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr")
        let inURL = dir.appendingPathComponent("stdin")
        fm.createFile(atPath: outURL.path, contents: nil)
        fm.createFile(atPath: errURL.path, contents: nil)
        fm.createFile(atPath: inURL.path, contents: Data((input ?? "").utf8))

        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        if let cwd = currentDirectory { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let inp = try FileHandle(forReadingFrom: inURL)
        defer { try? out.close(); try? err.close(); try? inp.close() }
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()

        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() > deadline {
                timedOut = true
                kill(p.processIdentifier, SIGKILL)
                break
            }
            usleep(5_000)
        }
        p.waitUntilExit()
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return ProcessResult(command: [executable] + arguments, status: p.terminationStatus,
                             terminatedBySignal: p.terminationReason == .uncaughtSignal,
                             stdout: stdout, stderr: stderr, timedOut: timedOut)
    }

    /// Like `run`, but throws `ProcessFailure` unless the child exits with status 0.
    @discardableResult
    public static func runChecked(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        currentDirectory: String? = nil,
        input: String? = nil,
        timeout: TimeInterval = 300
    ) throws -> ProcessResult {
        let r = try run(executable, arguments, environment: environment, currentDirectory: currentDirectory,
                        input: input, timeout: timeout)
        guard r.succeeded else { throw ProcessFailure(result: r) }
        return r
    }
}
