import Catalog
import Foundation
import Planner
import Storage
import WALFormat

/// What `walctl expire` kept because S3 Object Lock still retains it (`expire --json`: `objectLock`).
public struct ObjectLockKept: Codable, Equatable, Sendable {
    /// Objects (keys) left in the repository because a version of them is still under retention.
    public var retainedObjectCount = 0
    /// The latest retain-until date among them: a `walctl expire` after it removes them.
    public var retainedUntil: PGTimestamp?
    /// Backups the plan released that stay until then (listed, complete, usable).
    public var keptBackups: [String] = []
    /// Segments the plan released that stay until then (still listed in the catalog as archived).
    public var keptSegmentCount: Int64 = 0
    public init() {}

    /// The one line `walctl expire` prints.
    public var text: String {
        var line = "object lock: kept " + Human.count(retainedObjectCount, "object") + " still under retention"
        if let u = retainedUntil { line += " until " + u.iso8601 }
        if !keptBackups.isEmpty { line += " (backup" + (keptBackups.count == 1 ? " " : "s ") + keptBackups.joined(separator: ", ") + ")" }
        if keptSegmentCount > 0 { line += " (" + Human.count(Int(keptSegmentCount), "segment") + " stay listed)" }
        return line + "; a walctl expire after that date removes them"
    }
}

/// Expire on a repository with `s3-object-lock-mode` (docs/retention.md, "S3 Object Lock"). The
/// bucket is versioned, so expire deletes versions (a plain delete would only add a delete marker
/// and free nothing). Before the journal, the versions of everything the plan releases are listed;
/// a version written less than `s3-object-lock-days` ago is still retained (walctl sends
/// retain-until = its write time + the days), so its key, its segment or its backup is taken out of
/// the plan: the catalog keeps listing it and a later expire removes it. A version the server still
/// refuses (AccessDenied: retention extended by hand, clock skew) is counted as kept and its journal
/// item stays open, so the next expire tries again; it never fails the run.
struct ObjectLockExpire {
    let store: VersionedDeleting
    let days: Int
    let now: Date
    /// Versions by prefix listed (a `wal/.../` directory or `backup/<label>/`), each listed once.
    private(set) var versions: [String: [ObjectVersion]] = [:]
    var kept = ObjectLockKept()
    private var latest: (Date, ObjectVersion)?

    init?(store: ObjectStore, now: Date) {
        guard let v = store as? VersionedDeleting, let d = v.retentionDays else { return nil }
        self.store = v; days = d; self.now = now
    }

    mutating func listed(_ prefix: String) throws -> [ObjectVersion] {
        if let l = versions[prefix] { return l }
        let l = try repositoryCall { () throws(StoreError) in try store.listVersions(prefix: prefix) }
        versions[prefix] = l
        return l
    }

    /// The predicted retain-until of a version: its write time plus the days.
    func until(_ v: ObjectVersion) -> Date { (v.modified ?? now).addingTimeInterval(Double(days) * 86400) }

    mutating func noteRetained(_ v: ObjectVersion, until: Date) {
        if latest.map({ until > $0.0 }) ?? true { latest = (until, v) }
    }

    /// Keys under `prefix` with a version still retained at `now`, and that version.
    mutating func retainedKeys(_ prefix: String) throws -> [String: ObjectVersion] {
        var out: [String: ObjectVersion] = [:]
        for v in try listed(prefix) where !v.isDeleteMarker && until(v) > now {
            if out[v.key].map({ until(v) > until($0) }) ?? true { out[v.key] = v }
        }
        return out
    }

    /// Takes out of `plan` what is still retained: backups with a retained object (with the WAL
    /// from their start to their stop, so a kept backup stays restorable), segments whose meta or
    /// data object is retained (their range is split), and retained small files.
    mutating func trim(_ plan: inout RetentionPlan, catalog: Catalog) throws {
        let size = catalog.segmentSize
        // WAL a kept backup needs to be consistent (start..stop): kept with it, retained or not.
        var protected: [(timeline: TimeLineID, range: ClosedRange<XLogSegNo>)] = []
        for i in plan.backups.indices where plan.backups[i].action == "remove" {
            let label = plan.backups[i].label
            let r = try retainedKeys(BackupMetadata.prefix(label: label))
            guard !r.isEmpty else { continue }
            for v in r.values { noteRetained(v, until: until(v)) }
            kept.keptBackups.append(label)
            kept.retainedObjectCount += r.count
            plan.backups[i].action = "keep"
            plan.backups[i].rule = "object-lock: \(r.count) object\(r.count == 1 ? "" : "s") still retained"
            plan.bytesFreed -= plan.backups[i].storedSize ?? 0
            if let b = try catalog.backup(label: label) {
                let a = b.startLSN.segment(size: size), z = max(a, b.stopLSN.segment(size: size))
                protected.append((b.stopTimeline ?? b.timeline, a...z))
                if b.stopTimeline != nil, b.stopTimeline != b.timeline { protected.append((b.timeline, a...z)) }
            }
        }
        // WAL: retained segment numbers per timeline, from the directories the ranges touch.
        let perLog = size.segmentsPerXLogID
        var ranges: [RetentionRange] = []
        for r in plan.walRemoved {
            var retained = Set<XLogSegNo>()
            var log = r.firstSegno / perLog
            while log <= r.lastSegno / perLog {
                let dir = RepositoryLayout.directory(for: .segment(SegmentID(timeline: r.timeline, segno: log * perLog).fileName(size: size))) + "/"
                for (key, v) in try retainedKeys(dir) {
                    let file = String(key.dropFirst(dir.count))
                    guard let name = RepositoryLayout.walFileName(prefixOf: file), case .segment(let s)? = WALFileName(name),
                          let id = SegmentID(fileName: s, size: size), id.timeline == r.timeline, (r.firstSegno...r.lastSegno).contains(id.segno) else { continue }
                    retained.insert(id.segno)
                    noteRetained(v, until: until(v))
                    kept.retainedObjectCount += 1
                }
                log += 1
            }
            for p in protected where p.timeline == r.timeline {
                let lo = max(p.range.lowerBound, r.firstSegno), hi = min(p.range.upperBound, r.lastSegno)
                if lo <= hi { retained.formUnion(lo...hi) }
            }
            guard !retained.isEmpty else { ranges.append(r); continue }
            plan.bytesFreed -= r.storedBytes
            // The pieces between retained segments stay released.
            var start = r.firstSegno
            for s in retained.sorted() + [r.lastSegno + 1] {
                if s > start {
                    let piece = try Self.range(r, from: start, to: s - 1, catalog: catalog)
                    if piece.segments > 0 { ranges.append(piece); plan.bytesFreed += piece.storedBytes }
                }
                start = s + 1
            }
            kept.keptSegmentCount += Int64(retained.count)
        }
        plan.walRemoved = ranges
        var files: [String] = []
        for f in plan.filesRemoved {
            guard let name = WALFileName(f) else { files.append(f); continue }
            let dir = RepositoryLayout.directory(for: name) + "/"
            let mine = try retainedKeys(dir).filter { RepositoryLayout.walFileName(prefixOf: String($0.key.dropFirst(dir.count))) == f }
            if !mine.isEmpty {
                kept.retainedObjectCount += mine.count
                for v in mine.values { noteRetained(v, until: until(v)) }
            } else {
                files.append(f)
            }
        }
        plan.filesRemoved = files
    }

    /// A released range with the catalog's counts.
    static func range(_ whole: RetentionRange, from: XLogSegNo, to: XLogSegNo, catalog: Catalog) throws -> RetentionRange {
        let rows = try catalog.segments(timeline: whole.timeline, from: from, to: to)
        let size = catalog.segmentSize
        var r = whole
        r.firstSegno = from; r.lastSegno = to
        r.first = SegmentID(timeline: whole.timeline, segno: from).fileName(size: size)
        r.last = SegmentID(timeline: whole.timeline, segno: to).fileName(size: size)
        r.segments = Int64(rows.count)
        r.bytes = rows.reduce(0) { $0 + $1.size }
        r.storedBytes = rows.reduce(0) { $0 + $1.storedSize }
        return r
    }

    /// Deletes every version of `keys` (listed under their directories), 1000 a request. Returns
    /// the keys the server refused (still retained); other failures throw.
    mutating func deleteAll(_ keys: [String], count: inout DeletionCount) throws -> Set<String> {
        guard !keys.isEmpty else { return [] }
        var byDir: [String: Set<String>] = [:]
        for k in keys { byDir[RepositoryProof.directory(of: k), default: []].insert(k) }
        var all: [ObjectVersion] = []
        for (dir, set) in byDir.sorted(by: { $0.key < $1.key }) {
            all += try listed(dir).filter { set.contains($0.key) }
        }
        // Keys in the given order (metas before data objects), then each key's versions.
        let order = Dictionary(keys.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        all.sort { (order[$0.key] ?? 0) < (order[$1.key] ?? 0) }
        var refused = Set<String>()
        var start = 0
        while start < all.count {
            let batch = Array(all[start..<min(all.count, start + 1000)])
            var pending = batch
            var attempt = 0
            while !pending.isEmpty {
                let failed = try repositoryCall { () throws(StoreError) in try store.deleteVersions(pending) }
                count.requests += 1
                var retry: [ObjectVersion] = []
                for f in failed {
                    if case .http(403, _, _, _, _) = f.error {
                        refused.insert(f.version.key)
                        noteRetained(f.version, until: until(f.version))
                    } else if f.error.isTransient && attempt < 4 {
                        retry.append(f.version)
                    } else {
                        throw WalctlError.store(f.error)
                    }
                }
                pending = retry
                attempt += 1
                if !retry.isEmpty { Thread.sleep(forTimeInterval: min(2.0, 0.05 * Double(1 << min(attempt, 6)))) }
            }
            start += 1000
        }
        count.objects += Set(all.map(\.key)).subtracting(refused).count
        kept.retainedObjectCount += refused.count
        for k in keys { versions[RepositoryProof.directory(of: k)]?.removeAll { $0.key == k && !refused.contains(k) } }
        return refused
    }

    /// The report's block, with the exact retain-until date of the latest retained version read
    /// from the server (one GetObjectRetention) when it answers, else the prediction.
    mutating func finish() -> ObjectLockKept? {
        guard kept.retainedObjectCount > 0 || !kept.keptBackups.isEmpty else { return nil }
        if let (predicted, v) = latest {
            let exact = (try? store.retainUntil(v)) ?? nil
            kept.retainedUntil = PGTimestamp(date: exact ?? predicted)
        }
        return kept
    }
}
