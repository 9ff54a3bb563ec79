import Foundation
import Logging
@testable import Commands

/// A `LogHandler` that keeps what a module logged, with its level: what the CLI's handler
/// (`StderrLineHandler`, `DaemonLogHandler`) would receive. Its level defaults to the CLI's default
/// (`log-level = warning`), so the debug detail of a push or a get is not kept.
final class LogCapture: @unchecked Sendable {
    struct Entry: Equatable {
        var level: Logger.Level
        var message: String
    }

    private let lock = NSLock()
    private var kept: [Entry] = []
    let level: Logger.Level

    init(level: Logger.Level = .warning) { self.level = level }

    func add(_ e: Entry) { lock.lock(); kept.append(e); lock.unlock() }

    /// Every entry, in order.
    var entries: [Entry] { lock.lock(); defer { lock.unlock() }; return kept }

    /// Every message, in order.
    var all: [String] { entries.map(\.message) }

    /// A logger whose messages land here.
    var logger: Logger { Logger(label: "walctl", factory: { _ in Handler(capture: self) }) }

    struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level
        var metadata: Logger.Metadata = [:]

        init(capture: LogCapture) { self.capture = capture; logLevel = capture.level }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) { capture.add(Entry(level: event.level, message: event.message.description)) }
    }
}
