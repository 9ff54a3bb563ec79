import Foundation
import Logging

/// walctl's one logger: created by the CLI from `log-level` and passed down (Archiver, ArchiveGet,
/// ArchivePush, the S3 store). Each message is one `walctl: ...` line on stderr, which PostgreSQL
/// copies into its log. error: errors only; warning (default): also warnings; info; debug: also each
/// repository request and each decision.
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
        line += event.message.description
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        if !all.isEmpty { line += " (" + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")" }
        line += "\n"
        ProgressOutput.clearLiveLine()
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

public enum WalctlLog {
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

    /// A logger that prints nothing (library defaults, tests).
    public static let silent = Logger(label: "walctl", factory: { _ in SwiftLogNoOpLogHandler() })
}

extension Configuration {
    /// The logger an interactive command passes down (`WalctlLog.interactive`).
    public var interactiveLogger: Logger { WalctlLog.interactive(level: logLevel) }
}
