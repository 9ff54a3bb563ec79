import Dispatch
import Foundation
import Storage
import WALFormat

/// Lets one non-Sendable value cross into `concurrentPerform` workers that only read it.
private struct Unchecked<T>: @unchecked Sendable { let value: T }

extension Catalog {
    /// Reads `backup/<label>/backup.json` as a `BackupRecord` JSON; nil when the object is absent.
    /// The default `readBackup` of `rebuild(from:)` and `check(against:)`.
    public static func readBackupRecord(store: ObjectStore, key: String) throws -> BackupRecord? {
        guard let bytes = try store.get(key: key) else { return nil }
        return try BackupRecord.decode(bytes, key: key)
    }

    /// The keys of every backup record in the repository (`backup/<label>/backup.json`).
    public static func backupRecordKeys(in repository: Repository) throws(CatalogError) -> [String] {
        do {
            return try repository.store.list(prefix: RepositoryLayout.backupPrefix).map(\.key).filter {
                $0.hasSuffix("/backup.json") && $0.dropFirst(RepositoryLayout.backupPrefix.count).split(separator: "/").count == 2
            }
        } catch {
            throw .repository("listing \(repository.url)/\(RepositoryLayout.backupPrefix): \(error)")
        }
    }

    /// Reads objects `keys` with `parallelism` concurrent readers (each store call is independent, so
    /// this works the same on a filesystem and on S3) and returns bytes or the error, in key order.
    static func readAll(_ keys: ArraySlice<String>, store: ObjectStore, parallelism: Int,
                        progress: (any ProgressSink)? = nil) -> [Result<[UInt8]?, Error>] {
        let n = keys.count
        guard n > 0 else { return [] }
        var out = [Result<[UInt8]?, Error>](repeating: .success(nil), count: n)
        let box = Unchecked(value: store)
        let base = keys.startIndex
        let keyArray = Array(keys)
        out.withUnsafeMutableBufferPointer { buf in
            let p = Unchecked(value: buf)
            let workers = max(1, min(parallelism, n))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < n {
                    p.value[i] = Result { try box.value.get(key: keyArray[i]) }
                    progress?.add(1)
                    i += workers
                }
            }
        }
        _ = base
        return out
    }

    /// Recreates this repository's rows from the repository alone: every `wal/**.meta` (segments
    /// with their time summaries, partial segments, history and backup-history files), the safety
    /// valve's `wal/**.skipped` markers (skipped segments, unless archived after all), the
    /// timeline histories (through `loadHistory`, given a history file name, since those objects are
    /// compressed and only the caller knows the codecs), and the backup records under `backup/`.
    ///
    /// Metas are read in parallel batches and inserted in one transaction per batch. The catalog is
    /// marked incomplete (`isComplete() == false`) until the end, so a reader never plans from a
    /// half-built catalog. An archive-push running at the same time is not lost: the old rows are
    /// cleared before the listing, so a file is either listed or recorded after the clear.
    ///
    /// - Parameter progress: fed with the number of objects to read (metas and markers, after the
    ///   listing), then each one read.
    /// - Returns: what was recorded; unreadable metas are skipped and listed in the report.
    @discardableResult
    public func rebuild(from repository: Repository, parallelism: Int = 16, batchSize: Int = 4096,
                        loadHistory: (String) throws -> TimelineHistory? = { _ in nil },
                        readBackup: (ObjectStore, String) throws -> BackupRecord? = Catalog.readBackupRecord,
                        progress: (any ProgressSink)? = nil)
        throws(CatalogError) -> RebuildReport
    {
        let started = Date()
        var report = RebuildReport()
        try write { () throws(CatalogError) in
            let id = SQLValue.int(repo)
            try conn.prepare("UPDATE repository SET rebuilt_at=NULL, rebuild_started_at=? WHERE id=?")
                .run([.int(PGTimestamp(date: started).microseconds), id])
            for t in ["segment", "partial_segment", "run", "timeline_stats", "restore_point", "archived_file", "timeline_history", "backup",
                      "skipped_segment", "drill"] {
                try conn.prepare("DELETE FROM \(t) WHERE repo=?").run([id])
            }
        }
        let keys: [String], markerKeys: [String]
        do {
            let listing = try repository.listWAL()
            keys = listing.metas.map(\.key)
            markerKeys = listing.skipMarkers.map(\.key)
        } catch {
            throw .repository("listing \(repository.url)/\(RepositoryLayout.walPrefix): \(error)")
        }
        var historyNames: [String] = []
        var unreadable: [String] = []
        progress?.setTotal(Int64(keys.count + markerKeys.count))
        try loadInBatches(keys, from: repository.store, parallelism: parallelism, batchSize: batchSize, unreadable: &unreadable, progress: progress,
                          decode: { key, bytes in
                              let m = try Repository.decodeMeta(bytes, key: key)
                              switch WALFileName(m.name) {
                              case .segment?: report.segments += 1
                              case .partial?: report.partialSegments += 1
                              case .history?: report.historyFiles += 1; historyNames.append(m.name)
                              case .backupHistory?: report.backupHistoryFiles += 1
                              case nil: throw CatalogError.invalidInput("\(m.name) is not a WAL file name")
                              }
                              return m
                          }, insert: { (m: ArchivedFileMeta) throws(CatalogError) in try insert(m) })
        // After every meta: a marker whose segment is archived (a push that completed after the
        // valve let it go) is no gap, and insertSkipped leaves it out.
        try loadInBatches(markerKeys, from: repository.store, parallelism: parallelism, batchSize: batchSize, unreadable: &unreadable, progress: progress,
                          decode: { key, bytes in try SkipRecord.decode(bytes, key: key) },
                          insert: { (r: SkipRecord) throws(CatalogError) in if try insertSkipped(r) { report.skippedSegments += 1 } })
        report.unreadable += unreadable
        for name in historyNames {
            do {
                if let h = try loadHistory(name) {
                    try write { () throws(CatalogError) in try insertHistory(h) }
                    report.histories += 1
                }
            } catch let e as CatalogError {
                throw e
            } catch {
                report.unreadable.append("\(name): \(error)")
            }
        }
        let pinned: Set<String>
        do { pinned = Self.pinnedLabels(in: try repository.store.list(prefix: RepositoryLayout.backupPrefix).map(\.key)) } catch {
            throw .repository("listing \(repository.url)/\(RepositoryLayout.backupPrefix): \(error)")
        }
        for key in try Self.backupRecordKeys(in: repository) {
            do {
                if var b = try readBackup(repository.store, key) {
                    if pinned.contains(b.label) { b.pinned = true }
                    try write { () throws(CatalogError) in try insertBackup(b) }
                    report.backups += 1
                }
            } catch let e as CatalogError where { if case .repository = e { return false }; return true }() {
                throw e
            } catch {
                report.unreadable.append("\(key): \(error)")
            }
        }
        try rebuildDrills(from: repository, report: &report)
        try markComplete()
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// Reads the objects `keys` in batches of `batchSize` (`parallelism` concurrent GETs), decodes
    /// each and records every batch in one write transaction. Objects deleted since the listing are
    /// passed over; objects that do not decode, and `.invalidInput` refusals, go to `unreadable`.
    private func loadInBatches<T>(_ keys: [String], from store: ObjectStore, parallelism: Int, batchSize: Int,
                                  unreadable: inout [String], progress: (any ProgressSink)?, decode: (String, [UInt8]) throws -> T,
                                  insert: (T) throws(CatalogError) -> Void) throws(CatalogError) {
        var start = 0
        while start < keys.count {
            let slice = keys[start..<min(keys.count, start + batchSize)]
            var values: [T] = []
            values.reserveCapacity(slice.count)
            for (key, r) in zip(slice, Self.readAll(slice, store: store, parallelism: parallelism, progress: progress)) {
                do {
                    guard let bytes = try r.get() else { continue }   // deleted since the listing
                    values.append(try decode(key, bytes))
                } catch {
                    unreadable.append("\(key): \(error)")
                }
            }
            var refused: [String] = []
            try write { () throws(CatalogError) in
                for v in values {
                    do throws(CatalogError) { try insert(v) } catch {
                        if case .invalidInput(let msg) = error { refused.append(msg) } else { throw error }
                    }
                }
            }
            unreadable += refused
            start += batchSize
        }
    }

    /// Every file name the catalog holds for this repository (segments, partials, history and
    /// backup-history files).
    public func allFileNames() throws(CatalogError) -> Set<String> {
        try read { () throws(CatalogError) -> Set<String> in
            var names = Set<String>()
            for (table, suffix) in [("segment", ""), ("partial_segment", ".partial")] {
                let s = try conn.prepare("SELECT timeline, segno FROM \(table) WHERE repo=?")
                try s.bind([.int(repo)])
                while try s.step() {
                    names.insert(SegmentID(timeline: TimeLineID(truncatingIfNeeded: s.int64(0)),
                                           segno: UInt64(bitPattern: s.int64(1))).fileName(size: segmentSize) + suffix)
                }
                s.reset()
            }
            let s = try conn.prepare("SELECT name FROM archived_file WHERE repo=?")
            try s.bind([.int(repo)])
            while try s.step() { names.insert(s.text(0)) }
            s.reset()
            return names
        }
    }

    /// Compares the catalog with the repository (one listing of `wal/` and `backup/`, no object
    /// read): files archived but not catalogued, catalogued but gone, metas without a data object,
    /// backup records on either side only, and skipped segments on either side only.
    public func check(against repository: Repository) throws(CatalogError) -> CatalogDrift {
        var drift = CatalogDrift()
        let listing: [ObjectInfo]
        do {
            listing = try repository.store.list(prefix: RepositoryLayout.walPrefix)
        } catch {
            throw .repository("listing \(repository.url)/\(RepositoryLayout.walPrefix): \(error)")
        }
        // Meta names, skip marker names, and names that have some data object
        // (`<dir>/<name>.<anything but meta>`).
        var metaNames = Set<String>(), dataNames = Set<String>(), markerNames = Set<String>()
        for o in listing {
            let file = o.key.split(separator: "/").last.map(String.init) ?? o.key
            if file.hasSuffix(RepositoryLayout.metaSuffix) {
                metaNames.insert(String(file.dropLast(RepositoryLayout.metaSuffix.count)))
            } else if file.hasSuffix(RepositoryLayout.skippedSuffix) {
                markerNames.insert(String(file.dropLast(RepositoryLayout.skippedSuffix.count)))
            } else if let name = RepositoryLayout.walFileName(prefixOf: file) {
                dataNames.insert(name)
            }
        }
        // What expire journaled (an interrupted run; docs/retention.md) is on its way out: its
        // objects still present or already gone are neither stale nor missing, and expired backup
        // rows (kept until their objects are gone) are not missing either.
        let expiring = try expiryFilter()
        let size = segmentSize
        let isExpiring = { (name: String) in !expiring.isEmpty && expiring.contains(name: name, segmentSize: size) }
        let catalogued = try allFileNames()
        let stale = metaNames.subtracting(catalogued), gone = catalogued.subtracting(metaNames), hollow = metaNames.subtracting(dataNames)
        drift.missingFromCatalog = stale.filter { !isExpiring($0) }.sorted()
        drift.missingFromRepository = gone.filter { !isExpiring($0) }.sorted()
        drift.metaWithoutObject = hollow.filter { !isExpiring($0) }.sorted()
        var being = Set(stale.union(gone).union(hollow).filter(isExpiring))
        // Gaps: markers of complete segments that were not archived after all.
        let repoSkipped = markerNames.subtracting(metaNames).filter { if case .segment? = WALFileName($0) { return true }; return false }
        let catalogSkipped = Set(try skippedSegments().map(\.name))
        drift.skippedMissingFromCatalog = repoSkipped.subtracting(catalogSkipped).sorted()
        drift.skippedMissingFromRepository = catalogSkipped.subtracting(repoSkipped).sorted()
        let repoLabels = Set(try Self.backupRecordKeys(in: repository).map {
            String($0.dropFirst(RepositoryLayout.backupPrefix.count).split(separator: "/")[0])
        })
        let rows = try backups()
        let catalogLabels = Set(rows.map(\.label))
        let expiredLabels = Set(rows.filter { $0.status == .expired }.map(\.label)).union(expiring.labels)
        drift.backupsMissingFromCatalog = repoLabels.subtracting(catalogLabels).subtracting(expiring.labels).sorted()
        drift.backupsMissingFromRepository = catalogLabels.subtracting(repoLabels).subtracting(expiredLabels).sorted()
        being.formUnion(expiredLabels.map { "backup \($0)" })
        drift.expiring = being.sorted()
        return drift
    }
}
