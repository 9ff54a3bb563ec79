import Foundation
import Logging
import FastPath
import Storage
import Catalog
import Planner
import WALFormat

/// Proves catalog rows against the repository with listings (one per `wal/TTTTTTTTLLLLLLLL/`
/// directory or backup prefix, cached), never one request per object: `walctl recover` before it
/// touches the target, `walctl verify` over its range, `walctl info` over the newest directory.
final class RepositoryProof {
    let repository: Repository
    let catalog: Catalog
    /// Listings by prefix, each key → object.
    private var listings: [String: [String: ListedObject]] = [:]
    /// How many listings were made (for benchmarks and tests).
    private(set) var listingCount = 0

    init(repository: Repository, catalog: Catalog) { self.repository = repository; self.catalog = catalog }

    /// The objects under `prefix` (ending in `/`), listed once.
    func objects(in prefix: String) throws -> [String: ListedObject] {
        if let l = listings[prefix] { return l }
        var map: [String: ListedObject] = [:]
        for o in try repositoryCall({ () throws(StoreError) in try repository.listDetailed(prefix: prefix) }) { map[o.key] = o }
        listingCount += 1
        listings[prefix] = map
        return map
    }

    /// Every listing made so far, merged.
    var allListed: [String: ListedObject] {
        var all: [String: ListedObject] = [:]
        for (_, l) in listings { all.merge(l) { a, _ in a } }
        return all
    }

    static func directory(of key: String) -> String {
        guard let slash = key.lastIndex(of: "/") else { return "" }
        return String(key[...slash])
    }

    /// The data object key of a catalogued file (the rule is `ArchivedFileMeta.objectKey`'s).
    static func objectKey(name: String, codec: String, crc32c: UInt32) -> String? {
        ArchivedFileMeta(name: name, size: 0, storedSize: 0, codec: codec, crc32c: crc32c, archivedAt: PGTimestamp(microseconds: 0), summary: nil).objectKey
    }

    /// The meta and the data object of one catalogued file, each that is not listed.
    func findings(name: String, codec: String, crc32c: UInt32) throws -> [RepositoryFinding] {
        guard let file = WALFileName(name) else { return [] }
        let metaKey = RepositoryLayout.metaKey(file)
        let listed = try objects(in: Self.directory(of: metaKey))
        var out: [RepositoryFinding] = []
        if listed[metaKey] == nil {
            out.append(RepositoryFinding(name: name, key: metaKey, detail: "in the catalog, but its meta is not in the repository"))
        }
        if let key = Self.objectKey(name: name, codec: codec, crc32c: crc32c), listed[key] == nil {
            out.append(RepositoryFinding(name: name, key: key, detail: "in the catalog, but its data object is not in the repository"))
        }
        return out
    }

    /// The complete segments `from...to` of `timeline` the catalog lists, proven.
    func segmentFindings(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws -> [RepositoryFinding] {
        var out: [RepositoryFinding] = []
        for s in try catalog.segments(timeline: timeline, from: from, to: to) {
            out += try findings(name: s.name, codec: s.codec, crc32c: s.crc32c)
        }
        return out
    }

    /// History or backup-history files the catalog lists, proven (a name the catalog lacks is the
    /// planner's business, not this check's).
    func fileFindings(_ names: [String]) throws -> [RepositoryFinding] {
        var out: [RepositoryFinding] = []
        for n in names {
            guard let r = try catalog.archivedFile(named: n) else { continue }
            out += try findings(name: n, codec: r.codec, crc32c: r.crc32c)
        }
        return out
    }

    /// A base backup: its `backup.json` and every object it names (tar archives, manifest).
    func backupFindings(label: String) throws -> [RepositoryFinding] {
        let prefix = BackupMetadata.prefix(label: label)
        let listed = try objects(in: prefix)
        let metaKey = BackupMetadata.key(label: label)
        let name = "backup \(label)"
        guard listed[metaKey] != nil else {
            return [RepositoryFinding(name: name, key: metaKey, detail: "in the catalog, but its backup.json is not in the repository")]
        }
        let contents: BackupContents
        do {
            contents = try BackupMetadata.read(label: label, repository: repository).1
        } catch let e as StoreError {
            throw WalctlError.store(e)
        } catch {
            return [RepositoryFinding(name: name, key: metaKey, detail: "its backup.json is unreadable: \(error)")]
        }
        var out: [RepositoryFinding] = []
        for object in contents.archives.map(\.object) + (contents.manifestObject.map { [$0] } ?? []) where listed[prefix + object] == nil {
            out.append(RepositoryFinding(name: name, key: prefix + object, detail: "an object of the backup is not in the repository"))
        }
        return out
    }

    /// Everything `plan` reads from the repository that is not there: every segment of its ranges
    /// (meta and data object), its history files, and its backup's objects.
    func findings(for plan: RecoveryPlan) throws -> [RepositoryFinding] {
        var out = try backupFindings(label: plan.backupLabel)
        out += try fileFindings(plan.historyFiles)
        for r in plan.segmentRanges { out += try segmentFindings(timeline: r.timeline, from: r.firstSegno, to: r.lastSegno) }
        return out
    }

    /// The refusal for a plan whose objects are missing.
    static func refusal(_ missing: [RepositoryFinding], plan: RecoveryPlan, repository: String) -> PlanRefusal {
        let shown = missing.prefix(5).map(\.key).joined(separator: ", ")
        var r = PlanRefusal(reason: .missingObject, message: """
            \(missing.count) object\(missing.count == 1 ? "" : "s") the plan needs \(missing.count == 1 ? "is" : "are") listed in the catalog but not in \
            \(repository): \(shown)\(missing.count > 5 ? ", ..." : ""); recovery would stop there. Run `walctl verify` (objects deleted or a \
            stale catalog), restore the objects or choose another target; nothing was changed
            """, timeline: plan.timeline)
        r.missingObjects = missing.prefix(PlanRefusal.missingSegmentsListed).map(\.key)
        let segments = Set(missing.compactMap { f -> String? in
            if case .segment? = WALFileName(f.name) { return f.name }; return nil
        }).sorted()
        r.missingSegments = Array(segments.prefix(PlanRefusal.missingSegmentsListed))
        r.missingSegmentCount = UInt64(segments.count)
        return r
    }
}

/// A repository call with typed throws, its failure as `WalctlError.store`.
func repositoryCall<T>(_ body: () throws(StoreError) -> T) throws -> T {
    do { return try body() } catch { throw WalctlError.store(error) }
}

/// Damaged WAL that no later base backup makes harmless.
enum DamageCheck {
    /// The damaged segments of `ranges` at or after the start of the newest complete backup among
    /// `backups` (all of them when there is none).
    static func unresolved(catalog: Catalog, ranges: [(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo)],
                           backups: [BackupRecord]) throws -> [DamagedSegment] {
        let newestStart = backups.filter { $0.status == .complete }.map(\.startLSN).max()
        var out: [DamagedSegment] = []
        for r in ranges {
            out += try catalog.damagedSegments(timeline: r.timeline, from: r.from, to: r.to).filter { d in newestStart.map { d.lsn >= $0 } ?? true }
        }
        return out
    }
}

extension ArchiveVerify {
    /// How old a temporary or unreferenced object must be before it is a leftover (an upload in
    /// progress is younger).
    public static let leftoverAge: TimeInterval = 3600

    /// Lists the repository over the checked range (every `wal/` directory from the range's first
    /// log number on, `wal/history/`, `backup/`) and compares it with the catalog: `staleCatalog`,
    /// `missingObjects`, `leftovers`, `damaged`. With `repair`, inserts what the repository has and
    /// the catalog lacks, removes rows whose meta (or `backup.json`) is gone, and checks again.
    func reconcile(_ report: inout ContinuityReport, catalog: Catalog, access: CatalogAccess, repair: Bool) throws {
        let repository = access.repository
        let proof = RepositoryProof(repository: repository, catalog: catalog)
        let perLog = catalog.segmentSize.segmentsPerXLogID
        let firstLog = report.timelines.map { $0.firstSegno / perLog }.min() ?? 0
        let dirs: [String]
        dirs = try repositoryCall { () throws(StoreError) in try repository.walDirectories() }
        for d in dirs where UInt64(Repository.walDirectoryName(d)?.log ?? 0) >= firstLog { _ = try proof.objects(in: d) }
        _ = try proof.objects(in: "wal/history/")
        let listed = proof.allListed

        // Objects the catalog lacks (stale) and data objects nothing refers to (leftovers).
        let catalogued = try catalog.allFileNames()
        // What an interrupted expire journaled: its objects still present are neither stale nor leftovers.
        let expiring = try catalog.expiryFilter()
        var metaNames = Set<String>()
        for key in listed.keys where key.hasSuffix(RepositoryLayout.metaSuffix) {
            let name = String((key.split(separator: "/").last ?? "").dropLast(RepositoryLayout.metaSuffix.count))
            guard WALFileName(name) != nil else { continue }
            metaNames.insert(name)
            if !catalogued.contains(name) && !expiring.contains(name: name, segmentSize: catalog.segmentSize) {
                report.staleCatalog.append(RepositoryFinding(name: name, key: key, detail: "archived in the repository, but not in the catalog"))
            }
        }
        let now = Date()
        for (key, o) in listed {
            guard let modified = o.modified, now.timeIntervalSince(modified) > Self.leftoverAge else { continue }
            let file = String(key.split(separator: "/").last ?? "")
            if TemporaryObjects.isTemporary(key) {
                report.leftovers.append(LeftoverObject(key: key, size: o.size, modifiedAt: PGTimestamp(date: modified)))
            } else if !file.hasSuffix(RepositoryLayout.metaSuffix), !file.hasSuffix(RepositoryLayout.skippedSuffix),
                      let name = RepositoryLayout.walFileName(prefixOf: file), !metaNames.contains(name),
                      !expiring.contains(name: name, segmentSize: catalog.segmentSize) {
                report.leftovers.append(LeftoverObject(key: key, size: o.size, modifiedAt: PGTimestamp(date: modified)))
            }
        }
        report.leftovers.sort { $0.key < $1.key }
        let backupKeys: [ObjectInfo]
        backupKeys = try repositoryCall { () throws(StoreError) in try repository.store.list(prefix: RepositoryLayout.backupPrefix) }
        let repoLabels = Set(backupKeys.map(\.key).filter { $0.hasSuffix("/backup.json") }.compactMap { $0.split(separator: "/").dropFirst().first.map(String.init) })
        let catalogLabels = Set(try catalog.backups().map(\.label))
        for label in repoLabels.subtracting(catalogLabels).sorted() {
            report.staleCatalog.append(RepositoryFinding(name: "backup \(label)", key: BackupMetadata.key(label: label),
                                                         detail: "a backup in the repository, but not in the catalog"))
        }
        report.staleCatalog.sort { $0.key < $1.key }

        // Catalog rows without objects, over the checked range.
        for r in report.timelines {
            report.missingObjects += try proof.segmentFindings(timeline: r.timeline, from: r.firstSegno, to: r.lastSegno)
        }
        if let tl = report.timeline, tl > 1 { report.missingObjects += try proof.fileFindings([hex8(UInt64(tl)) + ".history"]) }
        for b in report.backups { report.missingObjects += try proof.backupFindings(label: b.label) }

        // Damaged WAL no later backup covers.
        let onPath = Set(report.backups.map(\.label))
        report.damaged = try DamageCheck.unresolved(catalog: catalog, ranges: report.timelines.map { ($0.timeline, $0.firstSegno, $0.lastSegno) },
                                                    backups: try catalog.backups().filter { onPath.contains($0.label) })

        if repair && (!report.staleCatalog.isEmpty || !report.missingObjects.isEmpty) {
            let repaired = try self.repair(report, catalog: catalog, access: access)
            // Check again, from the repaired catalog.
            var again = try ContinuityChecker.check(catalog: catalog)
            again.deep = report.deep; again.corrupt = report.corrupt; again.objectsRead = report.objectsRead
            try reconcile(&again, catalog: catalog, access: access, repair: false)
            again.repaired = repaired
            report = again
            return
        }
        if report.staleCatalog.isEmpty && report.missingObjects.isEmpty { try catalog.markChecked() }
    }

    /// Brings the catalog up to date with the repository: inserts the stale files' metas (and
    /// history trees, backups), removes rows whose meta or `backup.json` is gone. A row whose meta
    /// is there but whose data object is gone stays (re-push the segment or restore the object).
    func repair(_ report: ContinuityReport, catalog: Catalog, access: CatalogAccess) throws -> [RepositoryFinding] {
        var done: [RepositoryFinding] = []
        let repository = access.repository
        for s in report.staleCatalog {
            if s.name.hasPrefix("backup ") {
                let label = String(s.name.dropFirst("backup ".count))
                let record = try BackupMetadata.read(label: label, repository: repository).0
                try catalog.recordBackup(record)
                done.append(RepositoryFinding(name: s.name, key: s.key, detail: "inserted into the catalog from the repository"))
                continue
            }
            guard let file = WALFileName(s.name) else { continue }
            do {
                guard let meta = try repository.meta(for: file) else { continue }
                try catalog.recordArchived(meta)
                if case .history = file, let h = try access.loadHistory(s.name) { try catalog.recordHistory(h) }
            } catch let e as StoreError { throw WalctlError.store(e) }
            done.append(RepositoryFinding(name: s.name, key: s.key, detail: "inserted into the catalog from its meta"))
        }
        for m in report.missingObjects where m.key.hasSuffix(RepositoryLayout.metaSuffix) || m.key.hasSuffix("/backup.json") {
            if m.name.hasPrefix("backup ") {
                try catalog.removeBackup(label: String(m.name.dropFirst("backup ".count)))
            } else if case .segment(let seg)? = WALFileName(m.name), let id = SegmentID(fileName: seg, size: catalog.segmentSize) {
                try catalog.removeSegment(timeline: id.timeline, segno: id.segno)
            } else {
                try catalog.removeArchivedFile(named: m.name)
            }
            done.append(RepositoryFinding(name: m.name, key: m.key, detail: "removed from the catalog: its objects are gone from the repository"))
        }
        return done
    }

}

/// `walctl info`: the catalog's summary, with one `status` line that compares the catalog with the
/// newest part of the repository (see `ArchiveInfo.status`).
public struct ArchiveInfo {
    public var config: Configuration
    public var logger: Logger
    public init(config: Configuration, logger: Logger = WalctlLog.silent) { self.config = config; self.logger = logger }

    public func run() throws -> CatalogInfo {
        let access = try CatalogAccess(config: config, logger: logger)
        let catalog = try access.open()
        var info = try catalog.info()
        let s = try Self.status(catalog: catalog, repository: access.repository, info: info)
        info.statusCode = s.code
        info.status = s.line
        info.drillWarning = DrillAge.warning(info: info, maxAge: config[.drillMaxAge].flatMap(SettingType.parseDuration).map(Int.init) ?? 0)
        let window = config[.retentionWindow]
        let newest = info.recoverableWindows.max { $0.timeline < $1.timeline }
        info.retention = RetentionStatus(window: window, full: try config.int(.retentionFull), archiveFull: try config.int(.retentionArchiveFull),
                                         expireAuto: try config.bool(.expireAuto),
                                         guaranteedFrom: window.flatMap(SettingType.parseDuration).map { PGTimestamp(microseconds: info.generatedAt.microseconds - $0 * 1_000_000) },
                                         existsFrom: newest?.from, existsFromBackup: newest?.backupLabel)
        return info
    }

    /// The worst problem, cheaply: one listing of the repository's newest `wal/` directory (the
    /// highest timeline and log number), of `wal/history/` and of `backup/`, compared with the
    /// catalog's rows for the same prefixes; plus the catalog's own damage, skip and gap records.
    /// Cost does not grow with the number of archived segments (at most one directory of them).
    static func status(catalog: Catalog, repository: Repository, info: CatalogInfo) throws -> (code: String, line: String) {
        let proof = RepositoryProof(repository: repository, catalog: catalog)
        var stale: [String] = [], missing: [String] = []
        let dirs: [String]
        dirs = try repositoryCall { () throws(StoreError) in try repository.walDirectories() }
        let perLog = catalog.segmentSize.segmentsPerXLogID
        let newest = try catalog.newestSegment()
        if let last = dirs.last, let (tl, log) = Repository.walDirectoryName(last) {
            let listed = try proof.objects(in: last)
            var repoNames = Set<String>()
            for key in listed.keys where key.hasSuffix(RepositoryLayout.metaSuffix) {
                repoNames.insert(String((key.split(separator: "/").last ?? "").dropLast(RepositoryLayout.metaSuffix.count)))
            }
            let from = UInt64(log) * perLog, to = from + perLog - 1
            var catalogNames = Set(try catalog.segments(timeline: tl, from: from, to: to).map(\.name))
            catalogNames.formUnion(try catalog.partialSegments(timeline: tl, from: from, to: to).map(\.name))
            let dirName = String(last.dropFirst(RepositoryLayout.walPrefix.count).dropLast())
            catalogNames.formUnion(try catalog.archivedFileNames(kind: "backup-history", timeline: tl).filter { $0.hasPrefix(dirName) })
            let expiring = try catalog.expiryFilter()
            stale += repoNames.subtracting(catalogNames).filter { !expiring.contains(name: $0, segmentSize: catalog.segmentSize) }.sorted()
            missing += catalogNames.subtracting(repoNames).sorted()
            missing += try proof.segmentFindings(timeline: tl, from: from, to: to).filter { !$0.key.hasSuffix(RepositoryLayout.metaSuffix) }.map(\.name)
            // The catalog's newest segment lies beyond the repository's newest directory.
            if let n = newest, let f = WALFileName(n.name), RepositoryLayout.directory(for: f) + "/" > last { missing.append(n.name) }
        } else if let n = newest {
            missing.append(n.name)
        }
        let historyMetas = Set(try proof.objects(in: "wal/history/").keys.filter { $0.hasSuffix(RepositoryLayout.metaSuffix) }
            .map { String(($0.split(separator: "/").last ?? "").dropLast(RepositoryLayout.metaSuffix.count)) })
        let catalogHistory = Set(try catalog.archivedFileNames(kind: "history"))
        stale += historyMetas.subtracting(catalogHistory).sorted()
        missing += catalogHistory.subtracting(historyMetas).sorted()
        let backupKeys: [ObjectInfo]
        backupKeys = try repositoryCall { () throws(StoreError) in try repository.store.list(prefix: RepositoryLayout.backupPrefix) }
        let repoLabels = Set(backupKeys.map(\.key).filter { $0.hasSuffix("/backup.json") }.compactMap { $0.split(separator: "/").dropFirst().first.map(String.init) })
        let catalogLabels = Set(info.backups.map(\.label))
        stale += repoLabels.subtracting(catalogLabels).sorted().map { "backup \($0)" }
        // A backup being expired (status expired) has lost its backup.json on purpose.
        missing += Set(info.backups.filter { $0.status != .expired }.map(\.label)).subtracting(repoLabels).sorted().map { "backup \($0)" }

        var seen = Set<String>()
        missing = missing.filter { seen.insert($0).inserted }
        if !missing.isEmpty {
            return ("missing-objects", "MISSING OBJECTS: \(missing.count) file\(missing.count == 1 ? "" : "s") in the catalog \(missing.count == 1 ? "is" : "are") not in the repository (\(missing.prefix(3).joined(separator: ", "))\(missing.count > 3 ? ", ..." : "")); run walctl verify")
        }
        if !stale.isEmpty {
            return ("stale-catalog", "STALE CATALOG: \(stale.count) archived object\(stale.count == 1 ? "" : "s") missing from the catalog (\(stale.prefix(3).joined(separator: ", "))\(stale.count > 3 ? ", ..." : "")); run walctl verify --repair")
        }
        let newestTimeline = try catalog.timelines().max()
        if let tl = newestTimeline {
            let path = try catalog.path(to: tl)
            let timelines = Set(path.map(\.timeline))
            let damaged = try DamageCheck.unresolved(catalog: catalog, ranges: path.map { ($0.timeline, 0, XLogSegNo(Int64.max)) },
                                                     backups: info.backups.filter { timelines.contains($0.timeline) })
            if let d = damaged.first {
                return ("damaged-wal", "DAMAGED WAL: \(d.name) at \(d.lsn): \(d.reason); recovery cannot replay past it: take a new base backup")
            }
        }
        if let s = info.skippedSegments.first {
            return ("skipped", "PITR BROKEN: \(info.skippedSegments.count) segment\(info.skippedSegments.count == 1 ? "" : "s") skipped by the safety valve (first \(s.name)); take a new base backup")
        }
        if let w = info.recoverableWindows.max(by: { $0.timeline < $1.timeline }), let g = w.gaps.first {
            return ("gap", "GAP: \(Human.count(w.gaps.reduce(UInt64(0)) { $0 + $1.count }, "segment")) missing on the path of timeline \(w.timeline) (first \(g.firstName)); run walctl verify")
        }
        return ("ok", "ok")
    }
}
