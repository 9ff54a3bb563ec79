import Foundation
import Logging
import Storage
import Catalog
import Planner
import WALFormat

/// `walctl verify`: the archive's continuity along the newest timeline's path, from the catalog
/// (rebuilt from the repository first when incomplete), see `ContinuityReport`, reconciled with the
/// repository's listing of that range (stale catalog, missing objects, leftovers, damaged WAL). With `deep`, every
/// archived segment in the checked range (and the newest timeline's history file) is read back from
/// the repository and verified against the size and CRC-32C of its meta, as archive-get does.
public struct ArchiveVerify {
    public var config: Configuration
    public var logger: Logger
    /// Where `--deep` shows its progress (objects read back of those in the range).
    public var progress: ProgressOutput = .off

    public init(config: Configuration, logger: Logger = WalctlLog.silent) {
        self.config = config; self.logger = logger
    }

    /// - Parameter repair: bring a stale catalog up to date from the repository (see `reconcile`).
    public func run(deep: Bool, repair: Bool = false) throws -> ContinuityReport {
        let access = try CatalogAccess(config: config, logger: logger)
        let catalog = try access.open()
        var report = try ContinuityChecker.check(catalog: catalog)
        try Expire.explainGaps(&report, catalog: catalog, config: config)
        if deep { try readBack(&report, catalog: catalog, repository: access.repository) }
        try reconcile(&report, catalog: catalog, access: access, repair: repair)
        report.settle()
        return report
    }

    /// Reads back every archived segment of `report.timelines` (gaps are already reported) and the
    /// newest timeline's history file; each failure is one `corrupt` entry naming the file.
    func readBack(_ report: inout ContinuityReport, catalog: Catalog, repository: Repository) throws {
        report.deep = true
        var names: [String] = []
        if let tl = report.timeline, tl > 1, report.missingHistoryFiles.isEmpty { names.append(hex8(UInt64(tl)) + ".history") }
        for r in report.timelines {
            for segno in r.firstSegno...r.lastSegno where try catalog.segment(timeline: r.timeline, segno: segno) != nil {
                names.append(SegmentID(timeline: r.timeline, segno: segno).fileName(size: catalog.segmentSize))
            }
        }
        let reader = ObjectReader(repository: repository)
        let shown = progress.start("verify --deep", unit: .objects, total: Int64(names.count))
        defer { shown.finish() }
        for name in names {
            defer { shown.add(1) }
            guard let file = WALFileName(name) else { continue }
            do {
                guard let meta = try repository.meta(for: file) else {
                    report.corrupt.append(CorruptObject(name: name, error: "in the catalog but its meta \(RepositoryLayout.metaKey(file)) is not in the repository (run `walctl catalog check`)"))
                    continue
                }
                try reader.read(meta) { _ in }
                report.objectsRead += 1
            } catch let e as WalctlError {
                report.corrupt.append(CorruptObject(name: name, error: "[\(e.code)] \(e)"))
            } catch {
                report.corrupt.append(CorruptObject(name: name, error: "\(error)"))
            }
        }
    }
}
