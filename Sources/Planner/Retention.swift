import Catalog
import WALFormat

/// The retention settings (`retention-window`, `retention-full`, `retention-archive-full`).
public struct RetentionPolicy: Codable, Equatable, Sendable {
    /// Seconds of recoverable time to keep (`retention-window`), nil when unset.
    public var windowSeconds: Int64?
    /// Keep at least the newest N complete backups (`retention-full`).
    public var full: Int?
    /// How many of the backups kept by `full` keep their WAL for PITR (`retention-archive-full`).
    public var archiveFull: Int?
    public init(windowSeconds: Int64? = nil, full: Int? = nil, archiveFull: Int? = nil) {
        self.windowSeconds = windowSeconds; self.full = full; self.archiveFull = archiveFull
    }
    /// True when no rule says what to keep: expire refuses.
    public var isEmpty: Bool { windowSeconds == nil && full == nil }
}

/// WAL something outside the catalog's backups needs: a running backup or a recovery (a
/// registration in the repository, docs/retention.md), from `from` onward (to `to` when set) on
/// `timeline` and every timeline that descends from it there.
public struct RetentionHold: Codable, Equatable, Sendable {
    public var owner: String
    public var timeline: TimeLineID
    /// nil: no WAL (a backup's registration: the WAL it needs is newer than anything expire removes).
    public var from: LSN?
    public var to: LSN?
    /// A backup label the holder uses (a recovery's backup): never expired while held.
    public var label: String?
    public init(owner: String, timeline: TimeLineID, from: LSN?, to: LSN? = nil, label: String? = nil) {
        self.owner = owner; self.timeline = timeline; self.from = from; self.to = to; self.label = label
    }
}

/// A `.partial`, `.history` or `.backup` file the retention planner decides about.
public struct RetentionFile: Equatable, Sendable {
    public var name: String
    public var storedSize: Int64
    public init(name: String, storedSize: Int64) { self.name = name; self.storedSize = storedSize }
}

/// The catalog view retention plans from: the recovery planner's, plus the small files.
public protocol RetentionCatalog: PlanningCatalog {
    /// Every `.partial`, `.history` and `.backup` file archived.
    func retentionFiles() throws -> [RetentionFile]
}

/// What happens to one backup, and why.
public struct RetentionBackupDecision: Codable, Equatable, Sendable {
    public var label: String
    public var timeline: TimeLineID
    public var stopTime: PGTimestamp
    public var storedSize: Int64?
    /// `keep` or `remove`.
    public var action: String
    /// The rule that keeps it (`pinned`, `retention-window`, `retention-full`, `running`, `held by ...`)
    /// or releases it (`retention-window: ...; retention-full: ...`).
    public var rule: String
    /// True when the WAL after its stop is kept (point-in-time recovery from it); false: only its
    /// start..stop WAL (consistency).
    public var pitr: Bool
}

/// A run of segments on one timeline, with counts and sizes from the catalog.
public struct RetentionRange: Codable, Equatable, Sendable {
    public var timeline: TimeLineID
    public var firstSegno: XLogSegNo
    public var lastSegno: XLogSegNo
    public var first: String
    public var last: String
    /// Archived segments inside (the range may span gaps), their original and stored bytes.
    public var segments: Int64
    public var bytes: Int64
    public var storedBytes: Int64
}

/// The retention plan: everything `walctl expire` removes, with the reason, and what remains.
public struct RetentionPlan: Codable, Equatable, Sendable {
    public var policy: RetentionPolicy
    public var now: PGTimestamp
    /// now - retention-window: every instant after it stays recoverable (nil without a window).
    public var windowStart: PGTimestamp?
    public var backups: [RetentionBackupDecision]
    /// Segment ranges removed, per timeline, ascending.
    public var walRemoved: [RetentionRange]
    /// The kept intervals per timeline (`lastSegno` nil: open-ended), for the record.
    public var walKept: [KeptInterval]
    public var filesRemoved: [String]
    /// Stored bytes removed (backups, WAL, files).
    public var bytesFreed: Int64
    /// After expire: the earliest instant recoverable (the stop of the earliest kept PITR backup) and that backup.
    public var recoverableFrom: PGTimestamp?
    public var recoverableFromBackup: String?
    /// Why nothing is removed, when so (no complete backup).
    public var note: String?

    public struct KeptInterval: Codable, Equatable, Sendable {
        public var timeline: TimeLineID
        public var firstSegno: XLogSegNo
        public var lastSegno: XLogSegNo?
    }

    public var removedBackups: [String] { backups.filter { $0.action == "remove" }.map(\.label) }
    public var isEmpty: Bool { removedBackups.isEmpty && walRemoved.isEmpty && filesRemoved.isEmpty }

    /// True when segment `segno` of `timeline` is inside a kept interval.
    public func keeps(timeline: TimeLineID, segno: XLogSegNo) -> Bool {
        walKept.contains { $0.timeline == timeline && $0.firstSegno <= segno && ($0.lastSegno.map { segno <= $0 } ?? true) }
    }
}

/// The retention planner: pure over a `RetentionCatalog` snapshot (docs/retention.md has the rules).
public enum RetentionPlanner {
    public static func plan(policy: RetentionPolicy, now: PGTimestamp, pinned: Set<String>, holds: [RetentionHold],
                            catalog: some RetentionCatalog) throws -> RetentionPlan {
        let size = catalog.planningSegmentSize
        let all = try catalog.planningBackups()
        let complete = all.filter { $0.status == .complete }.sorted { ($0.stopTime, $0.stopLSN, $0.label) < ($1.stopTime, $1.stopLSN, $1.label) }
        let n = complete.count
        let windowStart = policy.windowSeconds.map { PGTimestamp(microseconds: now.microseconds - $0 * 1_000_000) }
        let heldLabels = Set(holds.compactMap(\.label))

        // The window's anchor: the newest backup that stopped at or before the window's start.
        var anchor: Int?
        if let ws = windowStart {
            anchor = complete.lastIndex { Planning<Catalog>.conservativeStop($0) <= ws }
        }
        // Chains (docs/backup.md): retention-full counts chains, by their full backup; a kept
        // incremental keeps every backup it is built on (closure below), so a full backup goes only
        // with all its incrementals. Without incrementals every backup is its own chain.
        let chainOf: [[BackupRecord]] = complete.map { (try? BackupChain.chain(of: $0, in: complete)) ?? [$0] }
        // An incremental whose chain is broken (a member gone) cannot be restored: only a pin or a
        // hold keeps it.
        let broken = complete.map { $0.type == .incremental && (try? BackupChain.chain(of: $0, in: complete)) == nil }
        let rootOf = chainOf.map { $0.first!.label }
        var roots: [String] = []
        for r in rootOf where !roots.contains(r) { roots.append(r) }
        let rootIndex = Dictionary(uniqueKeysWithValues: complete.enumerated().map { ($0.element.label, $0.offset) })
        roots.sort { (rootIndex[$0] ?? 0) < (rootIndex[$1] ?? 0) }
        var decisions: [RetentionBackupDecision] = []
        var pitrBackups: [BackupRecord] = [], consistencyBackups: [BackupRecord] = []
        var keeps: [[String]] = [], releases: [[String]] = [], pitrs: [Bool] = []
        for (i, b) in complete.enumerated() {
            var keep: [String] = [], release: [String] = []
            var pitr = false
            if pinned.contains(b.label) || b.pinned == true { keep.append("pinned") }
            if heldLabels.contains(b.label) { keep.append("held by a running recovery"); pitr = true }
            if let ws = windowStart {
                if i >= (anchor ?? 0) {
                    keep.append(i == anchor ? "retention-window: the newest backup that stopped at or before the window's start \(ws.iso8601)"
                                : anchor == nil ? "retention-window: no backup stopped before the window's start \(ws.iso8601), so every backup is needed"
                                : "retention-window: inside the window")
                    pitr = true
                } else {
                    release.append("retention-window: stopped before \(complete[anchor!].label), which already covers the window's start \(ws.iso8601)")
                }
            }
            if let full = policy.full {
                let r = roots.firstIndex(of: rootOf[i]) ?? 0
                let chains = roots.count != n
                if r >= roots.count - full {
                    keep.append(chains ? "retention-full: in one of the newest \(full) chains" : "retention-full: one of the newest \(full)")
                    if r >= roots.count - min(full, policy.archiveFull ?? full) { pitr = true }
                } else {
                    release.append(chains ? "retention-full: not in one of the newest \(full) chains" : "retention-full: not one of the newest \(full)")
                }
            }
            if broken[i] {
                keep.removeAll { !$0.hasPrefix("pinned") && !$0.hasPrefix("held") }
                release.append("its chain is broken: \(b.parent ?? "?") is not a complete backup")
            }
            keeps.append(keep); releases.append(release); pitrs.append(pitr)
        }
        // A kept backup keeps the backups it is built on (its chain), as data only: restoring it
        // reads their files, never their WAL.
        for i in complete.indices.reversed() where !keeps[i].isEmpty {
            for a in chainOf[i].dropLast() {
                if let j = rootIndex[a.label], keeps[j].isEmpty { keeps[j].append("chain: \(complete[i].label) is built on it") }
            }
        }
        for (i, b) in complete.enumerated() {
            let kept = !keeps[i].isEmpty
            let pitr = pitrs[i]
            decisions.append(RetentionBackupDecision(label: b.label, timeline: b.timeline, stopTime: b.stopTime, storedSize: b.storedSize,
                                                     action: kept ? "keep" : "remove", rule: kept ? keeps[i].joined(separator: "; ") : releases[i].joined(separator: "; "),
                                                     pitr: kept && pitr))
            if kept { if pitr { pitrBackups.append(b) } else { consistencyBackups.append(b) } }
        }
        // Backups expire did not finish (status expired) are released again; running ones are held.
        var extraHolds = holds
        for b in all where b.status != .complete {
            if b.status == .running {
                extraHolds.append(RetentionHold(owner: "running backup \(b.label)", timeline: b.timeline, from: b.startLSN))
            } else if b.status == .expired {
                decisions.append(RetentionBackupDecision(label: b.label, timeline: b.timeline, stopTime: b.stopTime, storedSize: b.storedSize,
                                                         action: "remove", rule: "expired by an earlier expire that did not finish", pitr: false))
            }
        }

        var plan = RetentionPlan(policy: policy, now: now, windowStart: windowStart, backups: decisions, walRemoved: [], walKept: [],
                                 filesRemoved: [], bytesFreed: 0, recoverableFrom: nil, recoverableFromBackup: nil, note: nil)
        plan.bytesFreed = decisions.filter { $0.action == "remove" }.reduce(0) { $0 + ($1.storedSize ?? 0) }
        if let first = pitrBackups.min(by: { ($0.stopTime, $0.stopLSN) < ($1.stopTime, $1.stopLSN) }) {
            plan.recoverableFrom = first.stopTime; plan.recoverableFromBackup = first.label
        }
        guard !pitrBackups.isEmpty || !consistencyBackups.isEmpty else {
            plan.note = "no complete backup is kept: no WAL is removed"
            return plan
        }

        // Kept WAL intervals.
        let timelines = try catalog.planningTimelines()
        var paths: [TimeLineID: TimelinePath] = [:]
        for t in timelines { paths[t] = try catalog.planningHistory(of: t)?.path ?? [(timeline: t, begin: LSN(0), end: nil)] }
        var kept: [TimeLineID: [(XLogSegNo, XLogSegNo?)]] = [:]
        /// Keeps `from` (an LSN on `tl`) onward on every timeline whose path passes through `tl` at or after it.
        func keepFrom(_ tl: TimeLineID, _ from: LSN, to: LSN? = nil) {
            let seg = from.segment(size: size)
            for t in timelines {
                guard let path = paths[t], let i = path.firstIndex(where: { $0.timeline == tl && $0.begin <= from && ($0.end.map { from < $0 } ?? true) }) else { continue }
                for e in path[i...] {
                    let lo = max(seg, e.begin.segment(size: size))
                    var hi: XLogSegNo? = e.end.map { $0.segment(size: size) }   // the switch segment too (its .partial, the parent's copy)
                    if let to { let t2 = LSN(max(to.value, 1) - 1).segment(size: size); hi = hi.map { min($0, t2) } ?? t2 }
                    if let h = hi, h < lo { continue }
                    kept[e.timeline, default: []].append((lo, hi))
                }
            }
            if kept[tl] == nil { kept[tl] = [(seg, to.map { LSN(max($0.value, 1) - 1).segment(size: size) })] }
        }
        for b in pitrBackups { keepFrom(b.timeline, b.startLSN) }
        for h in extraHolds { if let f = h.from { keepFrom(h.timeline, f, to: h.to) } }
        for b in consistencyBackups {
            let last = LSN(max(b.stopLSN.value, 1) - 1).segment(size: size)
            let first = b.startLSN.segment(size: size)
            kept[b.timeline, default: []].append((first, last))
            if let st = b.stopTimeline, st != b.timeline { kept[st, default: []].append((first, last)) }
        }
        // Merged, per timeline.
        for (t, list) in kept {
            let sorted = list.sorted { $0.0 < $1.0 }
            var merged: [(XLogSegNo, XLogSegNo?)] = []
            for (a, b) in sorted {
                if let last = merged.last, last.1.map({ a <= $0 &+ 1 }) ?? true {
                    let hi: XLogSegNo? = (last.1 == nil || b == nil) ? nil : max(last.1!, b!)
                    merged[merged.count - 1] = (last.0, hi)
                } else {
                    merged.append((a, b))
                }
            }
            for (a, b) in merged { plan.walKept.append(.init(timeline: t, firstSegno: a, lastSegno: b)) }
        }
        plan.walKept.sort { ($0.timeline, $0.firstSegno) < ($1.timeline, $1.firstSegno) }

        // Removed: archived runs minus kept intervals.
        for t in timelines {
            let keptHere = plan.walKept.filter { $0.timeline == t }
            for run in try catalog.planningArchivedRuns(timeline: t, from: 0, to: XLogSegNo(Int64.max)) {
                var next = run.lowerBound
                var pieces: [ClosedRange<XLogSegNo>] = []
                for k in keptHere {
                    if k.firstSegno > next { pieces.append(next...min(run.upperBound, k.firstSegno - 1)) }
                    guard let kl = k.lastSegno else { next = XLogSegNo.max; break }
                    next = max(next, kl &+ 1)
                    if next > run.upperBound { break }
                }
                if next <= run.upperBound && next != XLogSegNo.max { pieces.append(next...run.upperBound) }
                for p in pieces where p.lowerBound <= p.upperBound && p.lowerBound >= run.lowerBound {
                    let s = try catalog.planningSizes(timeline: t, from: p.lowerBound, to: p.upperBound)
                    guard s.segments > 0 else { continue }
                    plan.walRemoved.append(RetentionRange(timeline: t, firstSegno: p.lowerBound, lastSegno: p.upperBound,
                                                          first: SegmentID(timeline: t, segno: p.lowerBound).fileName(size: size),
                                                          last: SegmentID(timeline: t, segno: p.upperBound).fileName(size: size),
                                                          segments: s.segments, bytes: s.bytes, storedBytes: s.storedBytes))
                    plan.bytesFreed += s.storedBytes
                }
            }
        }

        // Small files: .partial kept with the range around it, .backup with its segment, .history
        // while a kept timeline descends from it.
        var keptTimelines = Set(plan.walKept.map(\.timeline))
        for b in pitrBackups + consistencyBackups { keptTimelines.insert(b.timeline) }
        var neededHistories = Set<TimeLineID>()
        for t in keptTimelines {
            neededHistories.insert(t)
            for e in paths[t] ?? [] { neededHistories.insert(e.timeline) }
        }
        for f in try catalog.retentionFiles() {
            guard let name = WALFileName(f.name) else { continue }
            var keep = true
            switch name {
            case .history(let t): keep = neededHistories.contains(t)
            case .partial(let s):
                guard let id = SegmentID(fileName: s, size: size) else { continue }
                keep = plan.keeps(timeline: id.timeline, segno: id.segno) || (id.segno > 0 && plan.keeps(timeline: id.timeline, segno: id.segno - 1))
                    || plan.walKept.contains { $0.firstSegno <= id.segno && ($0.lastSegno.map { id.segno <= $0 } ?? true) && timelines.contains($0.timeline) && $0.timeline > id.timeline }
            case .backupHistory(let s, _):
                guard let id = SegmentID(fileName: s, size: size) else { continue }
                keep = plan.keeps(timeline: id.timeline, segno: id.segno)
            case .segment: continue
            }
            if !keep { plan.filesRemoved.append(f.name); plan.bytesFreed += f.storedSize }
        }
        plan.filesRemoved.sort()
        return plan
    }
}

extension Catalog: RetentionCatalog {
    public func retentionFiles() throws -> [RetentionFile] {
        var out: [RetentionFile] = []
        for kind in ["history", "backup-history"] {
            for n in try archivedFileNames(kind: kind) {
                out.append(RetentionFile(name: n, storedSize: try archivedFile(named: n)?.storedSize ?? 0))
            }
        }
        for t in try timelines() {
            for p in try partialSegments(timeline: t, from: 0, to: XLogSegNo(Int64.max)) {
                out.append(RetentionFile(name: p.name, storedSize: p.storedSize))
            }
        }
        return out
    }
}
