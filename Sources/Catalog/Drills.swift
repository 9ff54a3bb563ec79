import Foundation
import Storage
import WALFormat

/// What the catalog keeps of one `walctl drill` (docs/drills.md): the fields `walctl info` shows.
/// The drill's full result is stored in the repository as `drill/<timestamp>.json`; this struct
/// decodes from that same JSON (its other keys are ignored), so `catalog rebuild` reads it back.
public struct DrillSummary: Codable, Equatable, Sendable {
    /// When the drill started.
    public var startedAt: PGTimestamp
    /// True when every check passed.
    public var passed: Bool
    /// `time`, `latest`, ...: the plan's target type, and its value (nil for `latest`).
    public var targetType: String
    public var targetValue: String?
    public var backupLabel: String?
    /// Total recovery time measured by the drill, seconds (nil when it ended before a plan).
    public var rtoSeconds: Double?
    /// Seconds between the target (for `latest`, the last archived commit) and the drill.
    public var rpoSeconds: Double?
    /// Why the drill failed, in one line (nil when it passed).
    public var failure: String?
    /// The repository key of the full record.
    public var key: String

    public init(startedAt: PGTimestamp, passed: Bool, targetType: String, targetValue: String?, backupLabel: String?,
                rtoSeconds: Double?, rpoSeconds: Double?, failure: String?, key: String) {
        self.startedAt = startedAt; self.passed = passed; self.targetType = targetType; self.targetValue = targetValue
        self.backupLabel = backupLabel; self.rtoSeconds = rtoSeconds; self.rpoSeconds = rpoSeconds
        self.failure = failure; self.key = key
    }

    /// `drill/`: where drill records live in the repository.
    public static let prefix = "drill/"

    /// `drill/20261130T154500Z.json` for a drill started at `date` (UTC, whole seconds).
    public static func key(startedAt date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return prefix + f.string(from: date) + ".json"
    }
}

extension Catalog {
    /// Records (or replaces, by start time) a drill.
    public func recordDrill(_ d: DrillSummary) throws(CatalogError) {
        try write { () throws(CatalogError) in try insertDrill(d) }
    }

    func insertDrill(_ d: DrillSummary) throws(CatalogError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json: String
        do { json = String(decoding: try enc.encode(d), as: UTF8.self) } catch { throw .invalidInput("cannot encode drill \(d.key): \(error)") }
        try conn.prepare("INSERT OR REPLACE INTO drill(repo, started_at, passed, record) VALUES(?,?,?,?)")
            .run([.int(repo), .int(d.startedAt.microseconds), .int(d.passed ? 1 : 0), .text(json)])
    }

    /// The newest drill, and the newest one that passed (nil when none).
    public func lastDrills() throws(CatalogError) -> (last: DrillSummary?, lastPassed: DrillSummary?) {
        try read { () throws(CatalogError) -> (DrillSummary?, DrillSummary?) in
            func one(_ sql: String) throws(CatalogError) -> DrillSummary? {
                let s = try conn.prepare(sql)
                try s.bind([.int(repo)])
                defer { s.reset() }
                guard try s.step() else { return nil }
                return try? JSONDecoder().decode(DrillSummary.self, from: Data(s.text(0).utf8))
            }
            return (try one("SELECT record FROM drill WHERE repo=? ORDER BY started_at DESC LIMIT 1"),
                    try one("SELECT record FROM drill WHERE repo=? AND passed=1 ORDER BY started_at DESC LIMIT 1"))
        }
    }

    /// Reads every `drill/*.json` of the repository into the catalog (part of `rebuild`).
    func rebuildDrills(from repository: Repository, report: inout RebuildReport) throws(CatalogError) {
        let keys: [String]
        do {
            keys = try repository.store.list(prefix: DrillSummary.prefix).map(\.key).filter { $0.hasSuffix(".json") }
        } catch {
            throw .repository("listing \(repository.url)/\(DrillSummary.prefix): \(error)")
        }
        for key in keys {
            do {
                guard let bytes = try repository.store.get(key: key) else { continue }
                var d = try JSONDecoder().decode(DrillSummary.self, from: Data(bytes))
                d.key = key
                try write { () throws(CatalogError) in try insertDrill(d) }
                report.drills += 1
            } catch let e as CatalogError {
                throw e
            } catch {
                report.unreadable.append("\(key): \(error)")
            }
        }
    }
}
