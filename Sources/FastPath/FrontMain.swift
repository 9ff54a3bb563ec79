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

    /// The hand-over mark: `<pid>:<hops>:<the front's own path>`, set by the front just before its
    /// `execv`. The PID survives the exec, so the mark is this very call's only in the process that
    /// carries the same PID: a value left in an environment by anyone else (a unit file, a shell) is
    /// ignored. walctl-core takes it at start (`takeHandOff`): it learns the front's path (the
    /// commands it writes for PostgreSQL name the front) and removes it, so its children run fronts
    /// afresh. A front that finds its own PID in it was reached by a hand-over (`WALCTL_FULL` or the
    /// installation names a front): it hands over to the `walctl-core` beside itself instead, once;
    /// a second time fails, rather than exec'ing for ever.
    public static let handOffVariable = "WALCTL_FRONT_HANDOFF"

    /// The front that handed this process over, when it did (set by `takeHandOff`).
    nonisolated(unsafe) public private(set) static var frontPath: String?

    /// Called first by the full binary: records the front's path from this call's mark and removes
    /// the mark from the environment.
    public static func takeHandOff() {
        if let mark = handOff(), !mark.path.isEmpty { frontPath = mark.path }
        unsetenv(handOffVariable)
    }

    /// This process's mark: its PID, the hops so far, the path of the front that set it.
    static func handOff() -> (hops: Int, path: String)? {
        guard let raw = getenv(handOffVariable) else { return nil }
        let value = Array(String(cString: raw).utf8)
        let parts = value.split(separator: UInt8(ascii: ":"), maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let pid = Int32(String(decoding: parts[0], as: UTF8.self)), pid == getpid(),
              let hops = Int(String(decoding: parts[1], as: UTF8.self)), hops >= 1 else { return nil }
        return (hops, String(decoding: parts[2], as: UTF8.self))
    }

    public static func run(_ arguments: [String]) -> Never {
        let mark = handOff()
        if mark == nil, arguments.count > 1, arguments[1] == "archive-push" || arguments[1] == "archive-get",
           case .exit(let code) = FastFront.run(arguments, env: .current()) {
            exit(code)
        }
        // Handing over: this executable's path, read once (the core beside it, the mark).
        let exe = executablePath()
        let exeErrno = errno
        var hops = 1
        var core: [CChar]
        if let mark {
            // A front's hand-over reached a front: WALCTL_FULL (or walctl-core's file) names one.
            guard mark.hops < 2, let dir = exe.flatMap({ directory(of: $0) }) else {
                let me = exe.map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) } ?? "this executable"
                fail(arguments, "[file-io]: a walctl front's hand-over reached a front again: \(me) is a walctl front, not the full binary walctl-core (WALCTL_FULL must name walctl-core; reinstall walctl and walctl-core together)")
            }
            hops = mark.hops + 1
            core = dir + Array(coreName.utf8CString)
        } else {
            core = coreBinary(arguments, executable: exe, errno: exeErrno)
        }
        let own = exe.flatMap { validUTF8($0) } ?? ""
        setenv(handOffVariable, "\(getpid()):\(hops):\(own)", 1)
        var cargv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        execv(core, &cargv)
        let why = String(cString: strerror(errno))
        unsetenv(handOffVariable)
        fail(arguments, "[file-io]: cannot run the full walctl binary \(String(decoding: core.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)): \(why) (walctl and walctl-core are installed side by side; WALCTL_FULL names another)")
    }

    /// `WALCTL_FULL` when set (tests, unusual layouts), else `walctl-core` in the directory of this
    /// executable (`/proc/self/exe`: a symlink such as /usr/local/bin/walctl resolves to the real
    /// one; `executable` nil when it could not be read, with that `errno`). A NUL-terminated path,
    /// its bytes as the system gave them (not necessarily UTF-8).
    static func coreBinary(_ arguments: [String], executable: [CChar]?, errno readErrno: Int32) -> [CChar] {
        if let p = getenv("WALCTL_FULL"), p.pointee != 0 {
            return Array(UnsafeBufferPointer(start: p, count: strlen(p) + 1))
        }
        guard let dir = executable.flatMap({ directory(of: $0) }) else {
            fail(arguments, "[file-io]: cannot read /proc/self/exe to find \(coreName) beside this executable: \(String(cString: strerror(readErrno)))")
        }
        return dir + Array(coreName.utf8CString)
    }

    /// The running executable's path (`/proc/self/exe`), its bytes without the terminating NUL.
    static func executablePath() -> [CChar]? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buf, 4096)
        guard n > 0, n < 4096 else { return nil }
        return Array(buf[0..<n])
    }

    /// The directory part of `path`, with its trailing `/`; nil when it has none.
    static func directory(of path: [CChar]) -> [CChar]? {
        var dir = path
        while let last = dir.last, last != 0x2F { dir.removeLast() }
        return dir.isEmpty ? nil : dir
    }

    /// The bytes as a String when they are valid UTF-8, else nil.
    static func validUTF8(_ bytes: [CChar]) -> String? {
        String(validating: bytes.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// One `walctl: error [code]: ...` line on stderr, as the full CLI's `report`; exit 255 for
    /// archive-get (1 would tell PostgreSQL the file does not exist and end recovery), else 1.
    static func fail(_ arguments: [String], _ message: String) -> Never {
        let line = Array(("walctl: error " + message + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(arguments.count > 1 && arguments[1] == "archive-get" ? 255 : 1)
    }
}
