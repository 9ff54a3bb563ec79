// walctl-fast: the start-up-cheap front PostgreSQL runs as archive_command / restore_command.
//
// It answers `archive-push %p` and `archive-get %f %p` itself only when the asynchronous pusher's
// result or the prefetched segment is already in the spool (FastPath.FastFront); everything else,
// including every error, is handled by `execv` of the full `walctl` binary beside it, with the
// same arguments. Imports Glibc and FastPath only: no Foundation, no ArgumentParser.
import FastPath
#if canImport(Glibc)
import Glibc
#endif

/// One line on stderr, as the full CLI's `report`.
func fail(_ message: String) -> Never {
    let line = Array(("walctl: error: " + message + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    // archive-get's failures must not read as "not found" (1): PostgreSQL would end recovery.
    exit(CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "archive-get" ? 255 : 1)
}

/// The full binary: `WALCTL_FULL` when set (tests, unusual layouts), else `walctl` in the directory
/// of this executable (`/proc/self/exe`).
func fullBinary() -> String {
    if let p = getenv("WALCTL_FULL"), p.pointee != 0 { return String(cString: p) }
    var buf = [CChar](repeating: 0, count: 4097)
    let n = readlink("/proc/self/exe", &buf, 4096)
    guard n > 0 else { fail("cannot find the walctl-fast executable (/proc/self/exe) to locate walctl beside it") }
    let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var dir = exe
    while let last = dir.utf8.last, last != 0x2F { dir.removeLast() }
    return dir + "walctl"
}

let arguments = CommandLine.arguments
if case .exit(let code) = FastFront.run(arguments, env: .current()) { exit(code) }
let full = fullBinary()
var cargv: [UnsafeMutablePointer<CChar>?] = ([full] + arguments.dropFirst()).map { strdup($0) } + [nil]
execv(full, &cargv)
fail("cannot run \(full): \(String(cString: strerror(errno)))")
