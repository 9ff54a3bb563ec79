import Catalog
import Foundation
import Logging
import Planner
import Storage
import WALFormat

/// Options of one `walctl expire`.
public struct ExpireOptions: Sendable {
    /// Print the plan, remove nothing, take no lease.
    public var dryRun = false
    public var now = Date()
    /// How long the repository lease is taken for (an expire takes seconds to minutes).
    public var leaseSeconds: TimeInterval = 3600
    /// Objects of a backup without `backup.json` (a killed backup) older than this are removed.
    public var leftoverAge: TimeInterval = 3600
    public init() {}
}

/// What `walctl expire` did (or, with `--dry-run`, would do). `walctl expire --json` prints it.
public struct ExpireReport: Codable, Sendable {
    public var formatVersion = 1
    public var dryRun: Bool
    public var plan: RetentionPlan
    /// Items an earlier, interrupted expire journaled and this run finished.
    public var resumed: [ExpiryItem] = []
    /// Labels under `backup/` without `backup.json` (killed backups) whose objects were removed.
    public var leftoverBackups: [String] = []
    /// Live registrations honoured.
    public var holds: [RegisteredHold] = []
    public var objectsRemoved = 0
    public var requests = 0
    public var seconds = 0.0
    /// S3 Object Lock: what stays because it is still retained (absent: nothing, or no Object Lock).
    public var objectLock: ObjectLockKept?
}

/// `walctl expire`: plans with `RetentionPlanner` and removes what the plan releases.
///
/// Order of removal (docs/retention.md): the catalog journals every item and stops listing it
/// (one transaction: rows removed, backups marked `expired`); then, per backup, `backup.json`
/// first and its other objects after; then WAL, every `.meta` (the commit marker) before the data
/// objects; then the journal is cleared. A kill at any point leaves a repository `verify` calls
/// clean (journaled objects still present are neither stale nor missing) and a second expire
/// finishes the journal before it plans again.
public struct Expire {
    public var config: Configuration
    public var logger: Logger
    public init(config: Configuration, logger: Logger = WalctlLog.silent) { self.config = config; self.logger = logger }

    /// The retention settings; throws `retention-unset` when none says what to keep.
    public static func policy(_ config: Configuration) throws -> RetentionPolicy {
        var p = RetentionPolicy()
        if let w = config[.retentionWindow] {
            guard let s = SettingType.parseDuration(w) else {
                throw WalctlError.configuration(.invalidValue(name: Setting.retentionWindow.name, value: w, expected: SettingType.duration.allowed, source: nil))
            }
            p.windowSeconds = s
        }
        p.full = try config.int(.retentionFull)
        p.archiveFull = try config.int(.retentionArchiveFull)
        guard !p.isEmpty else {
            throw WalctlError.retentionUnset("walctl expire does not guess what to keep: set retention-window (a duration: 14d, 36h, 90m) and/or retention-full (the newest N backups), optionally retention-archive-full, in the config file or with --set; docs/retention.md")
        }
        return p
    }

    public func run(_ options: ExpireOptions = ExpireOptions()) throws -> ExpireReport {
        let started = Date()
        let policy = try Self.policy(config)
        let access = try CatalogAccess(config: config, logger: logger)
        let store = access.repository.store
        let catalog = try access.open()
        var lease: RepositoryLease?
        if !options.dryRun {
            lease = try RepositoryLock.acquire(store, owner: "walctl expire", duration: options.leaseSeconds, now: options.now, logger: logger)
        }
        defer { if let lease { RepositoryLock.release(store, lease) } }
        var count = DeletionCount()
        var lock = ObjectLockExpire(store: store, now: options.now)

        // 1. Finish what an interrupted expire journaled.
        var resumed: [ExpiryItem] = []
        if !options.dryRun {
            resumed = try catalog.pendingExpiry()
            if !resumed.isEmpty {
                logger.info("finishing \(resumed.count) item(s) an interrupted expire left in the catalog's journal")
                let refused = try remove(resumed, access: access, catalog: catalog, count: &count, lock: &lock)
                try catalog.finishExpiry(Self.finished(resumed, refused: refused, size: catalog.segmentSize))
            }
        }

        // 2. Plan.
        let backupObjects = try repositoryCall { () throws(StoreError) in try access.repository.listDetailed(prefix: RepositoryLayout.backupPrefix) }
        let pinned = Catalog.pinnedLabels(in: backupObjects.map(\.key))
        let (live, expiredHolds) = try RepositoryLock.holds(store, now: options.now)
        var plan = try RetentionPlanner.plan(policy: policy, now: PGTimestamp(date: options.now), pinned: pinned,
                                             holds: live.map(\.retentionHold), catalog: catalog)
        try lock?.trim(&plan, catalog: catalog)
        var report = ExpireReport(dryRun: options.dryRun, plan: plan, resumed: resumed, holds: live)

        // Killed backups: objects under backup/<label>/ without backup.json, all older than leftoverAge,
        // not a running backup in the catalog and not registered.
        var byLabel: [String: [ListedObject]] = [:]
        for o in backupObjects {
            let parts = o.key.dropFirst(RepositoryLayout.backupPrefix.count).split(separator: "/", maxSplits: 1)
            guard parts.count == 2 else { continue }
            byLabel[String(parts[0]), default: []].append(o)
        }
        let busy = Set(live.compactMap(\.label)).union(try catalog.backups().filter { $0.status == .running }.map(\.label))
            .union(plan.removedBackups)
        for (label, objects) in byLabel where !busy.contains(label) {
            guard !objects.contains(where: { $0.key.hasSuffix("/backup.json") }) else { continue }
            let newest = objects.compactMap(\.modified).max() ?? options.now
            if options.now.timeIntervalSince(newest) > options.leftoverAge { report.leftoverBackups.append(label) }
        }
        report.leftoverBackups.sort()
        if options.dryRun {
            report.objectLock = lock?.finish()
            report.seconds = Date().timeIntervalSince(started)
            return report
        }

        // 3. Journal, remove, clear the journal.
        var items: [ExpiryItem] = plan.removedBackups.map { .backup(label: $0) }
        items += plan.walRemoved.map { .wal(timeline: $0.timeline, first: $0.firstSegno, last: $0.lastSegno) }
        items += plan.filesRemoved.map { .file(name: $0) }
        try catalog.beginExpiry(items)
        let refused = try remove(items, access: access, catalog: catalog, count: &count, lock: &lock)
        try catalog.finishExpiry(Self.finished(items, refused: refused, size: catalog.segmentSize))

        // 4. Leftovers of killed backups, and expired registrations.
        for label in report.leftoverBackups {
            let keys = (byLabel[label] ?? []).map(\.key)
            _ = try Self.delete(keys, store: store, count: &count, lock: &lock)
        }
        try repositoryCall { () throws(StoreError) in try store.deleteAll(expiredHolds, count: &count) }
        report.objectLock = lock?.finish()
        report.objectsRemoved = count.objects
        report.requests = count.requests
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// Removes the repository objects of `items`: backups (`backup.json` first), then every WAL
    /// item's metas, then their data objects. Listings, not names: data objects left without a
    /// meta by an earlier kill are found too.
    /// Returns the keys S3 Object Lock still retains (left in place).
    func remove(_ items: [ExpiryItem], access: CatalogAccess, catalog: Catalog, count: inout DeletionCount,
                lock: inout ObjectLockExpire?) throws -> Set<String> {
        let store = access.repository.store
        let size = catalog.segmentSize
        var refused = Set<String>()
        for case .backup(let label) in items {
            if lock != nil {
                refused.formUnion(try Self.delete([BackupRecord.metadataKey(label: label)], store: store, count: &count, lock: &lock))
            } else {
                try repositoryCall { () throws(StoreError) in try store.delete(key: BackupRecord.metadataKey(label: label)) }
                count.objects += 1; count.requests += 1
            }
            let rest = try repositoryCall { () throws(StoreError) in try store.list(prefix: BackupMetadata.prefix(label: label)) }.map(\.key)
            refused.formUnion(try Self.delete(rest.filter { !refused.contains($0) }, store: store, count: &count, lock: &lock))
        }
        // WAL: the directories the items touch, listed once each.
        var ranges: [TimeLineID: [ClosedRange<XLogSegNo>]] = [:]
        var files = Set<String>()
        var directories = Set<String>()
        let perLog = size.segmentsPerXLogID
        for item in items {
            switch item {
            case .wal(let tl, let a, let b):
                ranges[tl, default: []].append(a...b)
                var log = a / perLog
                while log <= b / perLog {
                    directories.insert(RepositoryLayout.directory(for: .segment(SegmentID(timeline: tl, segno: log * perLog).fileName(size: size))) + "/")
                    log += 1
                }
            case .file(let name):
                files.insert(name)
                if let f = WALFileName(name) { directories.insert(RepositoryLayout.directory(for: f) + "/") }
            case .backup: continue
            }
        }
        var metas: [String] = [], data: [String] = []
        for dir in directories.sorted() {
            for o in try repositoryCall({ () throws(StoreError) in try store.list(prefix: dir) }) {
                let file = String(o.key.dropFirst(dir.count))
                guard !file.contains("/"), let name = RepositoryLayout.walFileName(prefixOf: file), let parsed = WALFileName(name) else { continue }
                var hit = files.contains(name)
                if !hit, case .segment(let s) = parsed, let id = SegmentID(fileName: s, size: size) {
                    hit = ranges[id.timeline]?.contains { $0.contains(id.segno) } ?? false
                }
                guard hit else { continue }
                if file.hasSuffix(RepositoryLayout.metaSuffix) || file.hasSuffix(RepositoryLayout.skippedSuffix) { metas.append(o.key) } else { data.append(o.key) }
            }
        }
        refused.formUnion(try Self.delete(metas, store: store, count: &count, lock: &lock))
        refused.formUnion(try Self.delete(data, store: store, count: &count, lock: &lock))
        return refused
    }

    /// Deletes `keys`: every version of each under S3 Object Lock (refused ones returned), else `deleteAll`.
    static func delete(_ keys: [String], store: ObjectStore, count: inout DeletionCount, lock: inout ObjectLockExpire?) throws -> Set<String> {
        if lock != nil { return try lock!.deleteAll(keys, count: &count) }
        try repositoryCall { () throws(StoreError) in try store.deleteAll(keys, count: &count) }
        return []
    }

    /// The items whose objects are all gone: an item with a key S3 Object Lock refused stays in the
    /// journal (the next expire tries it again).
    static func finished(_ items: [ExpiryItem], refused: Set<String>, size: WALSegmentSize) -> [ExpiryItem] {
        guard !refused.isEmpty else { return items }
        var labels = Set<String>(), names = Set<String>()
        for k in refused {
            if k.hasPrefix(RepositoryLayout.backupPrefix) {
                if let l = k.dropFirst(RepositoryLayout.backupPrefix.count).split(separator: "/").first { labels.insert(String(l)) }
            } else if let n = RepositoryLayout.walFileName(prefixOf: String(k.split(separator: "/").last ?? "")) {
                names.insert(n)
            }
        }
        return items.filter { item in
            switch item {
            case .backup(let label): return !labels.contains(label)
            case .file(let name): return !names.contains(name)
            case .wal(let tl, let a, let b):
                return !names.contains { n in
                    guard case .segment(let s)? = WALFileName(n), let id = SegmentID(fileName: s, size: size) else { return false }
                    return id.timeline == tl && (a...b).contains(id.segno)
                }
            }
        }
    }
}

extension Expire {
    /// Moves the gaps that no kept interval of the retention plan touches (with the configured
    /// settings; none: nothing moves) from `gaps` to `expiredGaps`: WAL expire removed on purpose,
    /// between a backup kept for consistency only (pinned, or past retention-archive-full) and the
    /// next backup. The plan is the one rule; verify does not judge retention by itself.
    static func explainGaps(_ report: inout ContinuityReport, catalog: Catalog, config: Configuration) throws {
        guard !report.gaps.isEmpty, let policy = try? policy(config) else { return }
        let plan = try RetentionPlanner.plan(policy: policy, now: PGTimestamp(date: Date()), pinned: [], holds: [], catalog: catalog)
        let size = catalog.segmentSize
        var kept: [ContinuityGap] = []
        for g in report.gaps {
            guard let a = SegmentID(fileName: g.from, size: size)?.segno, let b = SegmentID(fileName: g.to, size: size)?.segno else { kept.append(g); continue }
            let touched = plan.walKept.contains { $0.timeline == g.timeline && $0.firstSegno <= b && ($0.lastSegno.map { $0 >= a } ?? true) }
            if touched { kept.append(g) } else { report.expiredGaps.append(g) }
        }
        report.gaps = kept
    }
}

extension ExpireReport {
    /// The human-readable report.
    public var text: String {
        var lines: [String] = []
        let p = plan
        func mib(_ b: Int64) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
        let rules = [p.policy.windowSeconds.map { "retention-window \($0 / 86400 > 0 && $0 % 86400 == 0 ? "\($0 / 86400)d" : $0 % 3600 == 0 ? "\($0 / 3600)h" : "\($0 / 60)m")" },
                     p.policy.full.map { "retention-full \($0)" }, p.policy.archiveFull.map { "retention-archive-full \($0)" }].compactMap { $0 }
        lines.append("expire\(dryRun ? " (dry run: nothing is removed)" : ""): \(rules.joined(separator: ", "))\(p.windowStart.map { "; the window starts at \($0.iso8601)" } ?? "")")
        for r in resumed { lines.append("finished an interrupted expire: \(r)") }
        for b in p.backups {
            lines.append("backup \(b.label): \(b.action == "keep" ? "keep" : "REMOVE") (\(b.rule))\(b.action == "keep" ? (b.pitr ? ", with its WAL for PITR" : ", with the WAL from its start to its stop only") : "")\(b.storedSize.map { ", " + mib($0) } ?? "")")
        }
        for r in p.walRemoved {
            lines.append("WAL timeline \(r.timeline): REMOVE \(r.first) .. \(r.last): \(r.segments) segment\(r.segments == 1 ? "" : "s"), \(mib(r.bytes)) (\(mib(r.storedBytes)) stored)")
        }
        if p.walRemoved.isEmpty { lines.append("WAL: nothing to remove") }
        for k in p.walKept { lines.append("WAL timeline \(k.timeline): keep from \(k.firstSegno)\(k.lastSegno.map { " to \($0)" } ?? " on")") }
        for f in p.filesRemoved { lines.append("file \(f): REMOVE") }
        for l in leftoverBackups { lines.append("backup \(l): REMOVE objects left by a killed backup (no backup.json)") }
        for h in holds { lines.append("honouring \(h.kind) on \(h.host) pid \(h.pid) until \(h.expiresAt.iso8601)\(h.label.map { " (backup \($0))" } ?? "")") }
        if let n = p.note { lines.append(n) }
        if let from = p.recoverableFrom {
            lines.append("window: recoverable from \(from.iso8601) (backup \(p.recoverableFromBackup ?? "?")) to the latest archived commit")
        }
        if let k = objectLock { lines.append(k.text) }
        lines.append("\(dryRun ? "would free" : "freed") \(p.bytesFreed) bytes (\(mib(p.bytesFreed)) stored)\(dryRun ? "" : "; removed \(objectsRemoved) objects in \(requests) requests in \(String(format: "%.1f", seconds)) s")")
        return lines.joined(separator: "\n")
    }
}
