import Foundation
import LocalFS

/// Child processes of `walctl drill`: the PostgreSQL server (its own process group, output to a log
/// file) and short commands whose output is read (`psql`, `postgres --version`, `pg_config`).
/// Every child starts with default signal dispositions and an empty signal mask, whatever the drill
/// itself ignores or blocks while its SIGINT/SIGTERM handler is installed.
enum ChildProcess {
    /// What a finished command printed and how it ended.
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        var succeeded: Bool { status == 0 }
    }

    private static func withSpawnAttributes<T>(newGroup: Bool, _ body: (inout posix_spawnattr_t) throws -> T) rethrows -> T {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        if newGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        return try body(&attr)
    }

    private static func spawn(_ argv: [String], actions: inout posix_spawn_file_actions_t, attr: inout posix_spawnattr_t,
                              environment: [String: String]?) throws -> pid_t {
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var cargv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { cargv.forEach { free($0) }; cenv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, &cargv, &cenv)
        if rc != 0 { throw WalctlError.file(operation: "run", path: argv[0], errno: rc) }
        return pid
    }

    /// Starts `argv` in a process group of its own (a Ctrl-C meant for the drill does not reach the
    /// server; the drill stops it itself), stdin from /dev/null, stdout and stderr appended to `log`.
    static func startDetached(_ argv: [String], log: String, environment: [String: String]? = nil) throws -> pid_t {
        let logFD: Int32
        do { logFD = try LocalFS.openAppend(log) } catch { throw WalctlError(error) }
        defer { close(logFD) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        return try withSpawnAttributes(newGroup: true) { attr in try spawn(argv, actions: &actions, attr: &attr, environment: environment) }
    }

    /// Runs `argv` to completion and returns what it printed (both streams read as they come, so a
    /// chatty command cannot block on a full pipe).
    static func run(_ argv: [String], environment: [String: String]? = nil) throws -> Output {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        func cloexecPipe(_ fds: inout [Int32]) -> Int32 {
            guard pipe(&fds) == 0 else { return -1 }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC); _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            return 0
        }
        guard cloexecPipe(&outPipe) == 0 else { throw WalctlError.file(operation: "create a pipe for", path: argv[0], errno: errno) }
        guard cloexecPipe(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            throw WalctlError.file(operation: "create a pipe for", path: argv[0], errno: errno)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let pid: pid_t
        do {
            pid = try withSpawnAttributes(newGroup: false) { attr in try spawn(argv, actions: &actions, attr: &attr, environment: environment) }
        } catch {
            for fd in outPipe + errPipe { close(fd) }
            throw error
        }
        close(outPipe[1]); close(errPipe[1])
        var out: [UInt8] = [], err: [UInt8] = []
        var fds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
        var open = 2
        var buf = [UInt8](repeating: 0, count: 65536)
        while open > 0 {
            let r = poll(&fds, nfds_t(fds.count), -1)
            if r < 0 { if errno == EINTR { continue }; break }
            for i in 0..<fds.count where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = read(fds[i].fd, &buf, buf.count)
                if n > 0 {
                    if i == 0 { out += buf[0..<n] } else { err += buf[0..<n] }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(fds[i].fd); fds[i].fd = -1; open -= 1
                }
            }
        }
        for f in fds where f.fd >= 0 { close(f.fd) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Output(status: code, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// True while `pid` (a child of this process) has not exited; reaps it when it has.
    static func isRunning(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return true }
        if r < 0 && errno == EINTR { return true }
        return false
    }

    /// Waits up to `seconds` for child `pid` to exit; true when it did.
    static func waitExit(_ pid: pid_t, seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if !isRunning(pid) { return true }
            usleep(20_000)
        }
        return !isRunning(pid)
    }
}
