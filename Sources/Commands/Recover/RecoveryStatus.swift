import Foundation
import Planner
import WALFormat

/// `walctl recover --status`: where a recovery started by `walctl recover` is, from the files in the
/// data directory (the saved plan, the restore command's progress lines) and the server log. Needs
/// no connection, so it also works while the server is not accepting connections yet.
public struct RecoveryStatus: Codable, Equatable, Sendable {
    /// `recover --status --json` (docs/json.md).
    public var formatVersion = 1
    public var pgdata: String
    /// `not-started`, `replaying`, `paused-at-target`, `promoted`, `shutdown-at-target`, `failed`, `stopped`.
    public var state: String
    public var serverRunning: Bool
    public var target: PlanTarget?
    public var backupLabel: String?
    public var plannedSegments: Int64?
    /// Distinct segments the restore command delivered, the last of them, and the elapsed time.
    public var restoredSegments: Int
    public var lastRestored: String?
    public var elapsedSeconds: Double?
    public var bytesPerSecond: Double?
    public var etaSeconds: Double?
    /// True once the log shows the stop at the target (or, for `latest`, the end of the archived WAL);
    /// false when recovery ended without reaching it; nil while unknown.
    public var targetReached: Bool?
    /// The server's own words on where it stopped ("recovery stopping before commit of transaction ...").
    public var stoppedAt: String?
    /// "last completed transaction was at log time ..." from the log.
    public var lastCompletedTransaction: String?
    public var consistent: Bool
    public var logFile: String?
    /// FATAL and PANIC lines from the log.
    public var errors: [String]

    enum CodingKeys: String, CodingKey {
        case formatVersion, pgdata, state, serverRunning, target, backupLabel, plannedSegments = "plannedSegmentCount"
        case restoredSegments = "restoredSegmentCount", lastRestored, elapsedSeconds, bytesPerSecond, etaSeconds
        case targetReached, stoppedAt, lastCompletedTransaction, consistent, logFile, errors
    }

    /// Reads the status of the recovery in `pgdata`; `log` overrides the server log's location
    /// (default: `walctl_recovery.log` in `pgdata`, else the newest file in `pgdata/log`).
    public static func read(pgdata: String, log: String? = nil, now: Date = Date()) throws -> RecoveryStatus {
        let dir = absolutePath(pgdata)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw WalctlError.refused("\(dir) is not a directory")
        }
        var plan: RecoveryPlan?
        if let data = FileManager.default.contents(atPath: dir + "/" + RecoveryFiles.plan) {
            plan = try? JSONDecoder().decode(RecoveryPlan.self, from: data)
        }
        var s = RecoveryStatus(pgdata: dir, state: "not-started", serverRunning: serverRunning(dir), target: plan?.target,
                               backupLabel: plan?.backupLabel, plannedSegments: plan?.segmentCount, restoredSegments: 0,
                               consistent: false, errors: [])

        // Progress: `NAME UNIX_SECONDS` per restored file; segments only, each counted once.
        if let text = try? String(contentsOfFile: dir + "/" + RecoveryFiles.progress, encoding: .utf8) {
            var seen = Set<String>()
            var first: Double?, last: Double?
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ")
                guard let n = f.first, case .segment? = WALFileName(String(n)) else { continue }
                let t = f.count > 1 ? Double(f[1]) : nil
                if seen.insert(String(n)).inserted {
                    s.lastRestored = String(n)
                    if let t { first = first ?? t; last = t }
                }
            }
            s.restoredSegments = seen.count
            if let first, let last {
                let elapsed = max(last, s.serverRunning ? now.timeIntervalSince1970 : last) - first
                s.elapsedSeconds = elapsed
                if elapsed > 0, seen.count > 1, let p = plan, p.segmentCount > 0 {
                    let perSegment = elapsed / Double(seen.count - 1)
                    s.bytesPerSecond = Double(p.walBytes) / Double(p.segmentCount) / perSegment
                    s.etaSeconds = max(0, Double(p.segmentCount - Int64(seen.count))) * perSegment
                }
            }
        }

        s.logFile = log ?? findLog(dir)
        var stopped = false, paused = false, promoted = false, shutdown = false, failed = false, redoDone = false
        if let path = s.logFile, let text = readTail(path, max: 16 << 20) {
            for raw in text.split(separator: "\n") {
                let line = String(raw)
                func message() -> String {
                    for marker in ["LOG:  ", "FATAL:  ", "PANIC:  "] {
                        if let r = line.range(of: marker) { return String(line[r.upperBound...]) }
                    }
                    return line
                }
                if line.contains("recovery stopping ") { stopped = true; s.stoppedAt = message() }
                else if line.contains("consistent recovery state reached") { s.consistent = true }
                else if line.contains("pausing at the end of recovery") || line.contains("recovery has paused") { paused = true }
                else if line.contains("shutdown at recovery target") { shutdown = true }
                else if line.contains("archive recovery complete") || line.contains("selected new timeline ID") { promoted = true }
                else if line.contains("redo done at") { redoDone = true }
                if let r = line.range(of: "last completed transaction was at log time ") {
                    s.lastCompletedTransaction = String(line[r.upperBound...])
                }
                if line.contains("FATAL:") || line.contains("PANIC:") {
                    s.errors.append(message())
                    if line.contains("recovery ended before configured recovery target was reached") ||
                        line.contains("requested recovery stop point is before consistent recovery point") { failed = true }
                }
            }
        }
        let latest = plan?.target.type == "latest"
        if failed {
            s.state = "failed"; s.targetReached = false
        } else if shutdown {
            s.state = "shutdown-at-target"; s.targetReached = true
        } else if promoted {
            s.state = "promoted"; s.targetReached = stopped || latest || redoDone ? true : nil
        } else if paused {
            s.state = "paused-at-target"; s.targetReached = true
        } else if s.serverRunning {
            s.state = "replaying"
        } else if s.restoredSegments > 0 || s.logFile != nil && stopped {
            s.state = "stopped"
        }
        if stopped && s.targetReached == nil { s.targetReached = true }
        return s
    }

    static func serverRunning(_ dir: String) -> Bool { RunningServer.pid(in: dir) != nil }

    static func findLog(_ dir: String) -> String? {
        if FileManager.default.fileExists(atPath: dir + "/" + RecoveryFiles.log) { return dir + "/" + RecoveryFiles.log }
        for sub in ["log", "pg_log"] {
            let d = dir + "/" + sub
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: d) else { continue }
            let newest = names.compactMap { n -> (String, Date)? in
                guard let a = try? FileManager.default.attributesOfItem(atPath: d + "/" + n), let m = a[.modificationDate] as? Date else { return nil }
                return (d + "/" + n, m)
            }.max { $0.1 < $1.1 }
            if let newest { return newest.0 }
        }
        return nil
    }

    static func readTail(_ path: String, max: Int) -> String? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        try? h.seek(toOffset: size > UInt64(max) ? size - UInt64(max) : 0)
        guard let d = try? h.readToEnd() else { return "" }
        return String(decoding: d, as: UTF8.self)
    }

    /// The status in a few lines for an operator.
    public var text: String {
        var out = ["recovery in \(pgdata): \(state)\(serverRunning ? " (server running)" : "")"]
        if let t = target { out.append("target: \(t.type) \(t.value ?? "")\(t.inclusive.map { $0 ? " (inclusive)" : " (exclusive)" } ?? "") from backup \(backupLabel ?? "?")") }
        var progress = "segments restored: \(restoredSegments)"
        if let p = plannedSegments { progress += " of \(p) planned" + (p > 0 ? String(format: " (%.0f%%)", min(100, Double(restoredSegments) * 100 / Double(p))) : "") }
        if let l = lastRestored { progress += ", last \(l)" }
        out.append(progress)
        if let b = bytesPerSecond { out.append("rate: \(Human.rate(b))" + (etaSeconds.map { ", ETA \(Human.duration($0))" } ?? "")) }
        if consistent { out.append("consistent: yes") }
        if let r = targetReached { out.append("target reached: \(r ? "yes" : "NO")") }
        if let s = stoppedAt { out.append("stopped: \(s)") }
        if let l = lastCompletedTransaction { out.append("last completed transaction: \(l)") }
        for e in errors { out.append("error: \(e)") }
        if let l = logFile { out.append("log: \(l)") } else { out.append("log: not found (pass --log FILE)") }
        return out.joined(separator: "\n")
    }
}
