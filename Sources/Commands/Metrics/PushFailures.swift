import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The synchronous archive-push's failure counter (`walctl_archive_push_failures_total`): each
/// archive-push is a fresh process, so the count lives in a small file beside the catalog,
/// `<catalog>.push-failures`: `failures N`, `last UNIXTIME CODE`. Recording is best effort and
/// never changes archive-push's answer (a full or read-only disk must not turn a failure into a
/// different one); the file is locked while it is rewritten, so concurrent pushes add up.
public struct PushFailures: Equatable, Sendable {
    public var failures: Int64
    public var lastFailureAt: Double?
    public var lastCode: String?

    public static func path(catalog: String) -> String { catalog + ".push-failures" }

    static func parse(_ text: String) -> PushFailures {
        var r = PushFailures(failures: 0, lastFailureAt: nil, lastCode: nil)
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count >= 2, f[0] == "failures", let n = Int64(f[1]) { r.failures = n }
            if f.count >= 2, f[0] == "last", let t = Double(f[1]) { r.lastFailureAt = t; r.lastCode = f.count >= 3 ? String(f[2]) : nil }
        }
        return r
    }

    var text: String {
        var s = "failures \(failures)\n"
        if let t = lastFailureAt { s += "last \(Int64(t)) \(lastCode ?? "error")\n" }
        return s
    }

    /// The counter at `catalog`'s side, or nil when there is none (no synchronous push failed yet).
    public static func load(catalog: String) -> PushFailures? {
        guard let data = FileManager.default.contents(atPath: path(catalog: catalog)) else { return nil }
        return parse(String(decoding: data, as: UTF8.self))
    }

    /// Adds one failure with `code` (the error's `[code]`). Errors are swallowed (best effort).
    public static func record(catalog: String, code: String, now: Date = Date()) {
        let fd = open(path(catalog: catalog), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { return }
        var bytes = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 512)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        var c = parse(String(decoding: bytes, as: UTF8.self))
        c.failures += 1
        c.lastFailureAt = now.timeIntervalSince1970
        c.lastCode = code.isEmpty || code.contains(" ") ? "error" : code
        let out = Array(c.text.utf8)
        guard ftruncate(fd, 0) == 0 else { return }
        _ = out.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }
}
