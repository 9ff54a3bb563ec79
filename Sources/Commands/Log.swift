import Foundation
import Logging
import LocalFS

/// walctl's one logger: created once per process by the CLI from `log-level` and passed down as a
/// `Logger` (never a `(String) -> Void` closure) to every module that reports: Archiver, ArchiveGet,
/// ArchivePush, the asynchronous path and the safety valve, backups and restores, the S3 store.
/// Each message is one `walctl: ...` line on stderr, which PostgreSQL copies into its log.
/// error: errors only; warning (default): also warnings; info; debug: also each repository request
/// and each decision. The background pusher and prefetcher log through `DaemonLogHandler` instead.
public struct StderrLineHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(level: Logger.Level) { logLevel = level }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "walctl: "
        switch event.level {
        case .trace, .debug: line += "debug: "
        case .info, .notice, .warning: break   // warnings carry their own words (`WARNING: DAMAGED WAL ...`)
        case .error, .critical: line += "error: "
        }
        line += WalctlLog.text(event, handlerMetadata: metadata)
        line += "\n"
        ProgressOutput.clearLiveLine()
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

/// The background pusher's and prefetcher's handler (`WalctlLog.daemon`): each message one line
/// `2026-12-01T00:50:00Z walctl[1234]: <message>` appended to the spool's `daemon.log` (a debug
/// message as `... walctl[1234]: debug: <message>`). No level word otherwise: the lines read as they
/// did when the daemons wrote plain strings.
public struct DaemonLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let file: DaemonLogFile

    public init(level: Logger.Level, file: DaemonLogFile) { logLevel = level; self.file = file }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = WalctlLog.utcTimestamp() + " walctl[\(getpid())]: "
        if event.level <= .debug { line += "debug: " }
        line += WalctlLog.text(event, handlerMetadata: metadata)
        line += "\n"
        file.append(line)
    }
}

/// A daemon's log file, opened once through LocalFS (`openAppend`: O_APPEND, O_NOFOLLOW, a regular
/// file only, created 0600) and written one whole line per write(2), so the threads of the pusher
/// and the prefetcher never interleave within a line. A line that cannot be written is lost (it is
/// diagnostics; the spool's results and PostgreSQL's log carry what matters).
public final class DaemonLogFile: Sendable {
    public let path: String
    let fd: Int32

    public init(path: String) throws(LocalFSError) {
        self.path = path
        fd = try LocalFS.openAppend(path)
    }

    deinit { close(fd) }

    func append(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            do throws(LocalFSError) { try LocalFS.writeAll(fd, UnsafeRawBufferPointer(bytes), path: path) } catch {}
        }
    }
}

public enum WalctlLog {
    /// A message with its metadata (the handler's, then the event's): `text (key=value, ...)`.
    static func text(_ event: LogEvent, handlerMetadata: Logger.Metadata) -> String {
        var text = event.message.description
        let all = handlerMetadata.merging(event.metadata ?? [:]) { $1 }
        if !all.isEmpty { text += " (" + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")" }
        return text
    }

    /// Now as `YYYY-MM-DDTHH:MM:SSZ` (gmtime_r + strftime: no Foundation formatter).
    static func utcTimestamp(_ now: time_t = time(nil)) -> String {
        var t = now
        var parts = tm()
        guard gmtime_r(&t, &parts) != nil else { return "?" }
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `log-level`'s words as swift-log levels.
    public static func level(_ setting: String) -> Logger.Level {
        switch setting.lowercased() {
        case "error": return .error
        case "info": return .info
        case "debug": return .debug
        default: return .warning
        }
    }

    /// The logger for a configuration's `log-level`.
    public static func make(level: String) -> Logger {
        let l = self.level(level)
        return Logger(label: "walctl", factory: { _ in StderrLineHandler(level: l) })
    }

    /// The logger of an interactive command (info, verify, recover, expire, drill, metrics, ...):
    /// what the operator asked to see is logged at info, and printed whatever `log-level` says
    /// (as before the logger: `-q` and `log-level = error` silence progress, not these lines);
    /// debug detail only with `log-level = debug` / `-v`.
    public static func interactive(level: String) -> Logger {
        let l = min(self.level(level), .info)
        return Logger(label: "walctl", factory: { _ in StderrLineHandler(level: l) })
    }

    /// The logger of the background pusher and prefetcher: lines into `logPath` (the spool's
    /// `daemon.log`) through `DaemonLogHandler`. Notices and up are always written, whatever
    /// `log-level` says (the daemons' own lines were always written); debug with `log-level = debug`.
    public static func daemon(level: String, logPath: String) throws(WalctlError) -> Logger {
        let l = min(self.level(level), .notice)
        let file: DaemonLogFile
        do { file = try DaemonLogFile(path: logPath) } catch { throw WalctlError(error) }
        return Logger(label: "walctl", factory: { _ in DaemonLogHandler(level: l, file: file) })
    }

    /// A logger that prints nothing (library defaults, tests).
    public static let silent = Logger(label: "walctl", factory: { _ in SwiftLogNoOpLogHandler() })
}

extension Configuration {
    /// The logger an interactive command passes down (`WalctlLog.interactive`).
    public var interactiveLogger: Logger { WalctlLog.interactive(level: logLevel) }
}
