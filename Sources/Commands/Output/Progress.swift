import Foundation
import Storage

/// Where and how progress is shown (docs/operator-guide.md, "Progress"): a live line on a terminal,
/// a plain line every `progress-interval` seconds otherwise, or nothing. Made once by the CLI
/// (`ProgressOutput.standardError(config:enabled:)`) and passed to the long-running commands, which
/// call `start` once per piece of work. Never used by archive-push / archive-get (PostgreSQL's log).
public struct ProgressOutput: Sendable {
    public enum Mode: Sendable, Equatable {
        case off
        /// stderr is a terminal: one line, redrawn in place (`\r`) every `redraw` seconds.
        case terminal(redraw: Double)
        /// stderr is a file or pipe: one plain line every `interval` seconds.
        case lines(interval: Double)
    }

    public var mode: Mode
    /// Writes text to the output as it is (the terminal line has no newline).
    public var write: @Sendable (String) -> Void
    /// Monotonic seconds.
    public var now: @Sendable () -> Double
    /// True when `write` is the process's stderr (`standardError`): log lines then erase the live
    /// line first (`clearLiveLine`).
    var isProcessStandardError = false

    public init(mode: Mode, write: @escaping @Sendable (String) -> Void = ProgressOutput.writeStandardError,
                now: @escaping @Sendable () -> Double = ProgressOutput.monotonicSeconds) {
        self.mode = mode; self.write = write; self.now = now
    }

    /// No progress at all.
    public static let off = ProgressOutput(mode: .off)

    public var isOn: Bool { mode != .off }

    /// Progress on stderr: off when `enabled` is false (`--no-progress`) or `log-level` is `error`
    /// (`-q`); a live line when stderr is a terminal; else a line every `progress-interval` seconds.
    public static func standardError(config: Configuration, enabled: Bool) throws(ConfigurationError) -> ProgressOutput {
        guard enabled, config.logLevel != "error" else { return .off }
        if isatty(2) == 1 {
            var o = ProgressOutput(mode: .terminal(redraw: 0.25))
            o.isProcessStandardError = true
            return o
        }
        let interval = try config.int(.progressInterval) ?? 10
        return ProgressOutput(mode: .lines(interval: Double(max(1, interval))))
    }

    /// Starts showing one piece of work. `title` names it (`backup 20261130T101500`); `total` is
    /// the work to do when known (it can be set later: `setTotal`).
    public func start(_ title: String, unit: WorkProgress.Unit, total: Int64? = nil) -> WorkProgress {
        WorkProgress(title: title, unit: unit, total: total, output: self)
    }

    /// Whether a live line is on the terminal now (drawn, not yet erased).
    private static let live = LiveLine()
    private final class LiveLine: @unchecked Sendable {
        let lock = NSLock()
        var shown = false
    }

    /// Erases the live progress line, if one is shown, before another line goes to stderr (a log
    /// line would otherwise be glued to it); the progress redraws it at its next update. Called by
    /// the stderr log handler and the CLI's `report`.
    public static func clearLiveLine() {
        live.lock.lock(); defer { live.lock.unlock() }
        guard live.shown else { return }
        live.shown = false
        writeStandardError("\r\u{1B}[K")
    }

    static func setLiveLine(_ shown: Bool) {
        live.lock.lock(); live.shown = shown; live.lock.unlock()
    }

    @Sendable public static func writeStandardError(_ text: String) {
        var t = text
        t.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(2, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                off += n
            }
        }
    }

    @Sendable public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// One piece of work's progress: fed by the work loop (`add`, `set(done:)`, from any thread), shown
/// by `ProgressOutput`'s mode, ended by `finish()` (which erases the live line; the command then
/// prints its result). Feeding costs a lock and a clock read: call it per chunk or per object.
public final class WorkProgress: ProgressSink, @unchecked Sendable {
    /// What is counted: bytes (printed with binary prefixes) or objects (`1 object`, `2 objects`).
    public enum Unit: Sendable, Equatable {
        case bytes
        case items(singular: String, plural: String)
        public static let objects = Unit.items(singular: "object", plural: "objects")
    }

    public let title: String
    public let unit: Unit
    private let output: ProgressOutput
    private let lock = NSLock()
    private var total: Int64?
    private var done: Int64 = 0
    private let started: Double
    private var next: Double
    private var drawn = false
    private var finished = false
    private let isOff: Bool

    init(title: String, unit: Unit, total: Int64?, output: ProgressOutput) {
        self.title = title; self.unit = unit; self.total = total; self.output = output
        started = output.now()
        isOff = output.mode == .off
        switch output.mode {
        case .off: next = .infinity
        case .terminal: next = started   // drawn at once: the operator sees the total
        case .lines(let interval): next = started + interval
        }
        lock.lock(); tickLocked(now: started); lock.unlock()
    }

    /// Sets the total once known; a live line is redrawn at once, so the total shows as soon as it
    /// is known.
    public func setTotal(_ total: Int64?) {
        if isOff { return }
        let now = output.now()
        lock.lock(); defer { lock.unlock() }
        self.total = total
        if case .terminal = output.mode { next = min(next, now) }
        tickLocked(now: now)
    }

    public func add(_ n: Int64) {
        if isOff { return }
        let now = output.now()
        lock.lock(); done += n; tickLocked(now: now); lock.unlock()
    }

    /// Sets the amount done (a counter the work keeps itself, e.g. the server's progress messages).
    public func set(done: Int64) {
        if isOff { return }
        let now = output.now()
        lock.lock(); self.done = done; tickLocked(now: now); lock.unlock()
    }

    /// A progress dropped without `finish()` (an error was thrown) still erases its live line.
    deinit { finish() }

    /// Ends the display: the live line is erased. Idempotent.
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        if case .terminal = output.mode, drawn {
            output.write("\r\u{1B}[K")
            if output.isProcessStandardError { ProgressOutput.setLiveLine(false) }
        }
    }

    private func tickLocked(now: Double) {
        guard !finished, now >= next else { return }
        let text = WorkProgress.line(title: title, unit: unit, done: done, total: total, elapsed: now - started)
        switch output.mode {
        case .off: return
        case .terminal(let redraw):
            output.write("\r" + text + "\u{1B}[K")
            drawn = true
            next = now + redraw
            if output.isProcessStandardError { ProgressOutput.setLiveLine(true) }
        case .lines(let interval):
            output.write("walctl: " + text + "\n")
            next = now + interval
        }
    }

    /// The text of one progress line: `TITLE: DONE of TOTAL (P%), RATE, ETA T`; without a total,
    /// `TITLE: DONE, RATE`. The rate is the average since the start; the ETA the remaining work at
    /// that rate (none before a rate is known, or once the total is passed).
    public static func line(title: String, unit: Unit, done: Int64, total: Int64?, elapsed: Double) -> String {
        func amount(_ n: Int64) -> String {
            switch unit {
            case .bytes: return Human.bytes(n)
            case .items: return "\(n)"
            }
        }
        var text = title + ": " + amount(done)
        if let total, total > 0 {
            let pct = min(100, Int(Double(done) * 100 / Double(total)))
            text += " of " + amount(total)
            if case .items(let singular, let plural) = unit { text += " " + (total == 1 ? singular : plural) }
            text += " (\(pct)%)"
        } else if case .items(let singular, let plural) = unit {
            text += " " + (done == 1 ? singular : plural)
        }
        let rate = elapsed > 0.05 ? Double(done) / elapsed : 0
        if rate > 0 {
            switch unit {
            case .bytes: text += ", " + Human.rate(rate)
            case .items(_, let plural): text += ", " + (rate >= 10 ? String(format: "%.0f", rate) : String(format: "%.1f", rate)) + " \(plural)/s"
            }
            if let total, total > done { text += ", ETA " + Human.duration(Double(total - done) / rate) }
        }
        return text
    }
}
