import Foundation
import Logging
import Glibc
import Catalog
import Storage
import WALFormat

/// The Prometheus text exposition format (version 0.0.4), written by hand: walctl emits one
/// snapshot per run or scrape, in a fixed order, so a registry of live metric objects
/// (swift-prometheus) would add two packages (swift-metrics, swift-atomics) to the binary that runs
/// as `archive_command` for no gain, and it emits families in dictionary order (docs/metrics.md).
public struct PrometheusText {
    public enum Kind: String { case gauge, counter }

    struct Family {
        var name: String
        var kind: Kind
        var help: String
        var samples: [(labels: [(String, String)], value: Double)] = []
    }

    private var families: [Family] = []
    private var index: [String: Int] = [:]
    /// Labels added to every sample (before the sample's own).
    public var commonLabels: [(String, String)] = []

    public init(commonLabels: [(String, String)] = []) { self.commonLabels = commonLabels }

    /// Adds one sample; the first sample of a name declares its family (HELP and TYPE).
    public mutating func add(_ name: String, _ kind: Kind = .gauge, help: String, labels: [(String, String)] = [],
                             common: Bool = true, _ value: Double) {
        let i: Int
        if let existing = index[name] { i = existing } else {
            i = families.count
            index[name] = i
            families.append(Family(name: name, kind: kind, help: help))
        }
        families[i].samples.append((labels: (common ? commonLabels : []) + labels, value: value))
    }

    /// The exposition: each family's HELP and TYPE, then its samples, in the order first added.
    public var text: String {
        var out = ""
        for f in families where !f.samples.isEmpty {
            out += "# HELP \(f.name) \(Self.escapeHelp(f.help))\n# TYPE \(f.name) \(f.kind.rawValue)\n"
            for s in f.samples {
                out += f.name
                if !s.labels.isEmpty {
                    out += "{" + s.labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
                }
                out += " " + Self.format(s.value) + "\n"
            }
        }
        return out
    }

    /// A sample value: integers without a fraction, others in Swift's shortest round-trip form,
    /// and `NaN`, `+Inf`, `-Inf` as the format spells them.
    public static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return v.description
    }

    public static func escapeLabel(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    public static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// `walctl metrics`: the archive's health as Prometheus metrics, from the catalog, the repository's
/// newest listing (as `walctl info`'s status), `pg_wal/archive_status` and the async spool.
/// Every metric is documented in docs/metrics.md.
///
/// A scrape never fails on an unreachable repository or catalog: it reports `walctl_repository_up 0`
/// / `walctl_catalog_up 0` with what the other sources know, and the reason goes to `note`.
public struct MetricsReport {
    public var config: Configuration
    public var version: String
    public var logger: Logger

    /// Every `statusCode` `walctl info` can report, for the `walctl_status` state set.
    public static let statusCodes = ["ok", "missing-objects", "stale-catalog", "damaged-wal", "skipped", "gap", "incomplete-catalog"]

    public init(config: Configuration, version: String, logger: Logger = WalctlLog.silent) {
        self.config = config
        self.version = version
        self.logger = logger
    }

    static func seconds(_ t: PGTimestamp) -> Double { Double(t.unixMicroseconds) / 1_000_000 }

    /// The exposition text, generated now.
    public func render(now: Date = Date()) -> String {
        let nowTS = PGTimestamp(date: now)
        let nowSeconds = now.timeIntervalSince1970
        func age(_ t: PGTimestamp) -> Double { max(0, nowSeconds - Self.seconds(t)) }
        let repositoryURL = config[.repository] ?? ""
        var m = PrometheusText(commonLabels: [("repository", repositoryURL)])
        m.add("walctl_build_info", help: "walctl's version (always 1).", labels: [("version", version)], common: false, 1)
        m.add("walctl_metrics_generated_timestamp_seconds", help: "When these metrics were generated (Unix time): a textfile older than its schedule is stale.", nowSeconds)

        // The repository and the catalog.
        var catalogAccess: CatalogAccess?
        do { catalogAccess = try CatalogAccess(config: config, logger: logger) } catch {
            logger.warning("metrics: repository \(repositoryURL): \(Self.describe(error))")
        }
        var catalog: Catalog?
        if let catalogAccess {
            do { catalog = try catalogAccess.openRaw() } catch { logger.warning("metrics: catalog \(catalogAccess.path): \(Self.describe(error))") }
        }
        var skippedNames = Set<String>()
        var repositoryUp = catalogAccess != nil
        if let catalog, let access = catalogAccess {
            do {
                let info = try catalog.info(now: nowTS)
                let extras = try catalog.metricsExtras()
                skippedNames.formUnion(info.skippedSegments.map(\.name))
                m.add("walctl_catalog_up", help: "1 when the catalog could be read.", 1)
                m.add("walctl_catalog_complete", help: "1 when the catalog holds every archived file (0: never rebuilt, or a rebuild did not finish; run walctl catalog rebuild).", info.catalogComplete ? 1 : 0)
                if let c = info.catalogCheckedAt {
                    m.add("walctl_catalog_last_check_timestamp_seconds", help: "When the catalog was last reconciled with the repository (walctl verify, catalog check, a complete rebuild).", Self.seconds(c))
                    m.add("walctl_catalog_last_check_age_seconds", help: "Seconds since the catalog was last reconciled with the repository (absent: never).", age(c))
                }
                do {
                    let status = try ArchiveInfo.status(catalog: catalog, repository: access.repository, info: info)
                    let code = info.catalogComplete ? status.code : "incomplete-catalog"
                    for c in Self.statusCodes {
                        m.add("walctl_status", help: "walctl info's status as a state set: 1 for the current code (ok, missing-objects, stale-catalog, damaged-wal, skipped, gap, incomplete-catalog), 0 for the others.", labels: [("code", c)], c == code ? 1 : 0)
                    }
                } catch {
                    repositoryUp = false
                    logger.warning("metrics: repository \(repositoryURL): \(Self.describe(error))")
                }
                if let l = info.lastArchived {
                    m.add("walctl_last_archived_segment_timestamp_seconds", help: "When the most recently archived WAL segment was archived (Unix time).", Self.seconds(l.archivedAt))
                    m.add("walctl_last_archived_segment_age_seconds", help: "Seconds since the most recently archived WAL segment was archived.", age(l.archivedAt))
                }
                if let c = extras.lastArchivedCommit {
                    m.add("walctl_last_archived_commit_timestamp_seconds", help: "Commit time of the newest commit in archived WAL (Unix time): the newest point a recovery could reach.", Self.seconds(c))
                    m.add("walctl_last_archived_commit_age_seconds", help: "Seconds since the newest commit in archived WAL: the data a lost primary would lose now (RPO).", age(c))
                }
                for t in info.timelines {
                    let tl = [("timeline", String(t.timeline))]
                    m.add("walctl_archived_segments", help: "Complete WAL segments archived, per timeline.", labels: tl, Double(t.segments))
                    m.add("walctl_archived_wal_bytes", help: "Bytes of WAL archived (uncompressed), per timeline.", labels: tl, Double(t.bytes))
                    m.add("walctl_archived_wal_stored_bytes", help: "Bytes the archived WAL takes in the repository (compressed), per timeline.", labels: tl, Double(t.storedBytes))
                    m.add("walctl_archived_gap_segments", help: "Segments missing between archived runs, per timeline.", labels: tl, Double(t.gaps.reduce(Int64(0)) { $0 + Int64($1.count) }))
                }
                for w in info.recoverableWindows {
                    let tl = [("timeline", String(w.timeline))]
                    if let f = w.from { m.add("walctl_recoverable_window_start_timestamp_seconds", help: "The earliest time a point-in-time recovery can reach on this timeline: the stop time of the earliest complete backup on its path (Unix time; absent: no backup).", labels: tl, Self.seconds(f)) }
                    if let t = w.to { m.add("walctl_recoverable_window_end_timestamp_seconds", help: "The latest commit time a recovery from that backup can reach without crossing a gap (Unix time; absent: none).", labels: tl, Self.seconds(t)) }
                    if let f = w.from, let t = w.to { m.add("walctl_recoverable_window_seconds", help: "Length of the recoverable window, per timeline.", labels: tl, Self.seconds(t) - Self.seconds(f)) }
                    m.add("walctl_recoverable_window_gap_segments", help: "Segments missing inside the recoverable window's path, per timeline (non-zero: recovery stops at the first gap).", labels: tl, Double(w.gaps.reduce(Int64(0)) { $0 + Int64($1.count) }))
                }
                var byStatus: [String: Int] = [:]
                for b in info.backups { byStatus[b.status.rawValue, default: 0] += 1 }
                for s in BackupStatus.allCases {
                    m.add("walctl_backups", help: "Base backups in the catalog, by status.", labels: [("status", s.rawValue)], Double(byStatus[s.rawValue] ?? 0))
                }
                if let b = info.backups.filter({ $0.status == .complete }).max(by: { $0.stopTime < $1.stopTime }) {
                    m.add("walctl_newest_backup_timestamp_seconds", help: "Stop time of the newest complete base backup (Unix time).", Self.seconds(b.stopTime))
                    m.add("walctl_newest_backup_age_seconds", help: "Seconds since the newest complete base backup stopped.", age(b.stopTime))
                    m.add("walctl_newest_backup_size_bytes", help: "Size of the newest complete base backup (uncompressed).", Double(b.size))
                    if let s = b.storedSize { m.add("walctl_newest_backup_stored_bytes", help: "Bytes the newest complete base backup takes in the repository.", Double(s)) }
                }
                if let d = extras.lastDrill {
                    m.add("walctl_last_drill_timestamp_seconds", help: "When the newest recovery drill ran (Unix time).", Self.seconds(d.startedAt))
                    m.add("walctl_last_drill_age_seconds", help: "Seconds since the newest recovery drill ran.", age(d.startedAt))
                    m.add("walctl_last_drill_success", help: "1 when the newest recovery drill passed, 0 when it failed.", d.passed ? 1 : 0)
                    if let r = d.rtoSeconds { m.add("walctl_last_drill_rto_seconds", help: "Recovery time the newest drill measured (restore + replay until the server accepted connections).", r) }
                }
                if let d = extras.lastPassedDrill {
                    m.add("walctl_last_successful_drill_age_seconds", help: "Seconds since the newest recovery drill that passed.", age(d.startedAt))
                }
            } catch {
                m.add("walctl_catalog_up", help: "1 when the catalog could be read.", 0)
                logger.warning("metrics: catalog \(access.path): \(Self.describe(error))")
            }
        } else if catalogAccess != nil {
            m.add("walctl_catalog_up", help: "1 when the catalog could be read.", 0)
        }

        // The archive backlog: PostgreSQL's `.ready` files (the data directory must be readable).
        if let pgdata = config[.pgdata], !pgdata.isEmpty {
            let walDir = pgdata + "/pg_wal"
            if Glibc.access(walDir + "/archive_status", R_OK | X_OK) == 0 {
                let ready = ReadyScanner.scan(walDir: walDir)
                let backlog = ReadyScanner.backlog(ready, now: now)
                m.add("walctl_archive_backlog_ready_files", help: "WAL files PostgreSQL has marked ready to archive and not yet archived (.ready in pg_wal/archive_status).", Double(ready.count))
                m.add("walctl_archive_backlog_ready_bytes", help: "Bytes of the WAL files waiting to be archived.", Double(backlog.bytes))
                m.add("walctl_archive_backlog_oldest_age_seconds", help: "Seconds the oldest waiting WAL file has been ready (0: none waiting).", backlog.oldestAge)
            } else {
                logger.warning("metrics: cannot read \(walDir)/archive_status: \(String(cString: strerror(errno))) (run as the cluster's owner); the backlog metrics are left out")
            }
        }

        // Synchronous archive-push failures, counted beside the catalog (PushFailures).
        let failures = PushFailures.load(catalog: CatalogAccess.path(config))
        m.add("walctl_archive_push_failures_total", .counter, help: "archive-push runs that failed in synchronous mode (not through the asynchronous pusher), counted beside the catalog since it was created.", Double(failures?.failures ?? 0))
        if let t = failures?.lastFailureAt {
            m.add("walctl_archive_push_last_failure_timestamp_seconds", help: "When the last synchronous archive-push failed (Unix time; absent: none failed).", labels: [("code", failures?.lastCode ?? "error")], t)
        }

        // The async pusher's spool (archive-async) and the safety valve's records.
        if let spool = SpoolStatus.load(config: config) {
            skippedNames.formUnion(spool.skipped.map(\.name))
            m.add("walctl_async_pusher_running", help: "1 when the asynchronous pusher holds its spool lock.", spool.daemonRunning ? 1 : 0)
            if let snap = spool.snapshot {
                m.add("walctl_async_pushed_total", .counter, help: "Files the asynchronous pusher stored since it started (resets when it restarts).", Double(snap.pushed))
                m.add("walctl_async_push_failures_total", .counter, help: "Pushes of the asynchronous pusher that failed since it started (each is retried; resets when it restarts).", Double(snap.failed))
            }
            m.add("walctl_async_unreported_errors", help: "Failed pushes whose error archive-push has not yet reported to PostgreSQL.", Double(spool.pendingErrors))
            m.add("walctl_async_start_failures", help: "Failed starts of the asynchronous pusher in a row (0: the last start succeeded).", Double(ArchiveSpool(root: spool.spool).failedStart()?.failures ?? 0))
        }
        if catalog != nil || !skippedNames.isEmpty {
            m.add("walctl_valve_skipped_segments", help: "WAL segments the safety valve reported archived WITHOUT storing them (PITR cannot cross them; take a new base backup).", Double(skippedNames.count))
        }
        m.add("walctl_repository_up", help: "1 when the repository answered (its repository.json and the newest listing walctl info uses).", repositoryUp ? 1 : 0)
        return m.text
    }

    static func describe(_ error: Error) -> String {
        if let w = error as? WalctlError { return "[\(w.code)] \(w)" }
        if let c = error as? ConfigurationError { return "[config] \(c)" }
        return "\(error)"
    }
}
