#if canImport(Glibc)
import Glibc
#endif

/// The entry point of the start-up-cheap front, installed as `walctl` (what operators and
/// PostgreSQL run) and as `walctl-fast` (the name restore_commands written before the front became
/// `walctl` use). It answers `archive-push %p` / `archive-get %f %p` itself when it can
/// (`FastFront.run`); every other command, every call it cannot answer and every error is handed to
/// the full binary, `walctl-core`, by `execv` with the same argv (so `argv[0]`, the PID, the
/// environment and the file descriptors stay the caller's). docs/architecture.md, "Two executables".
public enum FrontMain {
    /// The full binary's file name, beside the front.
    public static let coreName = "walctl-core"

    /// Set in the environment of the handed-over process; the full binary removes it at start
    /// (`clearHandOffMark`). A front that finds it set was started by another front's hand-over:
    /// `WALCTL_FULL` or the installation names a front, not the full binary, and exec'ing again
    /// would loop for ever.
    public static let handOffVariable = "WALCTL_FRONT_HANDOFF"

    /// Called first by the full binary: its children (PostgreSQL started by `drill`, the async
    /// daemons) run fronts again legitimately.
    public static func clearHandOffMark() { unsetenv(handOffVariable) }

    public static func run(_ arguments: [String]) -> Never {
        if getenv(handOffVariable) != nil {
            fail(arguments, "[file-io]: \(describeCore()) is a walctl front, not the full binary (it was started by a front's hand-over): set WALCTL_FULL to walctl-core, or reinstall walctl and walctl-core together")
        }
        if arguments.count > 1, arguments[1] == "archive-push" || arguments[1] == "archive-get",
           case .exit(let code) = FastFront.run(arguments, env: .current()) {
            exit(code)
        }
        let core = coreBinary(arguments)
        setenv(handOffVariable, "1", 1)
        var cargv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        execv(core, &cargv)
        let why = String(cString: strerror(errno))
        unsetenv(handOffVariable)
        fail(arguments, "[file-io]: cannot run the full walctl binary \(core): \(why) (walctl and walctl-core are installed side by side; WALCTL_FULL names another)")
    }

    /// `WALCTL_FULL` when set (tests, unusual layouts), else `walctl-core` in the directory of this
    /// executable (`/proc/self/exe`: a symlink such as /usr/local/bin/walctl resolves to the real one).
    static func coreBinary(_ arguments: [String]) -> String {
        if let p = getenv("WALCTL_FULL"), p.pointee != 0 { return String(cString: p) }
        guard let dir = executableDirectory() else {
            fail(arguments, "[file-io]: cannot read /proc/self/exe to find \(coreName) beside this executable: \(String(cString: strerror(errno)))")
        }
        return dir + coreName
    }

    static func describeCore() -> String {
        if let p = getenv("WALCTL_FULL"), p.pointee != 0 { return "WALCTL_FULL (" + String(cString: p) + ")" }
        return coreName
    }

    /// The directory of the running executable, with its trailing `/`.
    static func executableDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buf, 4096)
        guard n > 0 else { return nil }
        var dir = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while let last = dir.utf8.last, last != 0x2F { dir.removeLast() }
        return dir
    }

    /// One `walctl: error [code]: ...` line on stderr, as the full CLI's `report`; exit 255 for
    /// archive-get (1 would tell PostgreSQL the file does not exist and end recovery), else 1.
    static func fail(_ arguments: [String], _ message: String) -> Never {
        let line = Array(("walctl: error " + message + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(arguments.count > 1 && arguments[1] == "archive-get" ? 255 : 1)
    }
}
