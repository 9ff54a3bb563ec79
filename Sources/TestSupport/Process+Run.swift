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
    public init(result: ProcessResult) { self.result = result }
    public var description: String {
        let how = result.timedOut ? "timed out" :
            result.terminatedBySignal ? "was killed by signal \(result.status)" : "exited with status \(result.status)"
        return "`\(result.command.joined(separator: " "))` \(how)\nstdout:\n\(result.stdout.suffix(4000))\nstderr:\n\(result.stderr.suffix(4000))"
    }
}

extension Process {
    /// Runs `executable` with `arguments` and waits for it, capturing stdout and stderr.
    ///
    /// The child is started with `posix_spawn` and reaped with `waitpid`, not with Foundation's
    /// `Process`: on Linux, `Process` can wait forever for a child that started a daemon (`pg_ctl
    /// start`), because the daemon inherits the descriptor it watches. Output goes through temporary
    /// files rather than pipes, so a chatty child (or a daemon keeping them open) never blocks anyone.
    /// The child is killed (SIGKILL) if it runs longer than `timeout` seconds.
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
        let outPath = dir.appendingPathComponent("stdout").path, errPath = dir.appendingPathComponent("stderr").path
        let inPath = dir.appendingPathComponent("stdin").path
        guard fm.createFile(atPath: inPath, contents: Data((input ?? "").utf8)) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: inPath])
        }

        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        // posix_spawn has no portable "chdir" action on older glibc: run through /bin/sh only for that.
        var program = executable
        if let cwd = currentDirectory {
            program = "/bin/sh"
            let script = "cd \"$0\" && exec \"$@\""
            for p in argv { free(p) }
            argv = (["/bin/sh", "-c", script, cwd, executable] + arguments).map { strdup($0) } + [nil]
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, program, &actions, nil, argv, envp)
        guard rc == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "cannot start \(executable): errno \(rc)"])
        }

        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        var status: Int32 = 0
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if w < 0 && errno != EINTR { break }
            if !timedOut && Date() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
            }
            usleep(2_000)
        }
        let signaled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
        let code = signaled ? status & 0x7F : (status >> 8) & 0xFF
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return ProcessResult(command: [executable] + arguments, status: code, terminatedBySignal: signaled,
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
