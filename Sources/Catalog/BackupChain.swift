import WALFormat

/// The backup chain (docs/backup.md): a full backup and the incremental backups that build on it,
/// each on its `parent`. Pure functions over the records, shared by `walctl backup` (choosing the
/// parent), restore (the members to read), `backup show` and the retention planner (a chain is kept
/// or expired whole).
public enum BackupChain {
    /// Why a chain cannot be used.
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        /// `label`'s parent `parent` has no complete record.
        case missingParent(label: String, parent: String)
        /// The parent links loop (a damaged or hand-edited repository).
        case cycle(label: String)
        public var description: String {
            switch self {
            case .missingParent(let l, let p): return "backup \(l) builds on \(p), which is not a complete backup in the repository"
            case .cycle(let l): return "the parent links of backup \(l) form a loop"
            }
        }
    }

    /// The backup an incremental taken now builds on: the newest complete backup (by stop LSN, then
    /// stop time) of the same system and PostgreSQL major version whose start and stop lie on the
    /// timeline history the server is on now (`history`: the current timeline's history file, nil on
    /// timeline 1 or when only the current timeline counts), and whose own chain is whole. nil: none,
    /// an incremental is impossible.
    public static func parent(among backups: [BackupRecord], systemIdentifier: String, pgVersion: Int,
                              timeline: TimeLineID, history: TimelineHistory?) -> BackupRecord? {
        let byLabel = index(backups)
        let candidates = backups.filter { b in
            guard b.status == .complete, b.systemIdentifier == systemIdentifier, b.pgVersion == pgVersion else { return false }
            let stopTL = b.stopTimeline ?? b.timeline
            if let h = history, h.timeline == timeline {
                return h.timeline(at: b.startLSN) == b.timeline && h.timeline(at: b.stopLSN) == stopTL
            }
            return b.timeline == timeline && stopTL == timeline
        }
        let ordered = candidates.sorted { ($0.stopLSN, $0.stopTime, $0.label) < ($1.stopLSN, $1.stopTime, $1.label) }
        return ordered.last { (try? chain(of: $0, in: byLabel)) != nil }
    }

    /// The chain that restores `backup`: its full backup first, `backup` last. Throws when a member
    /// is missing (or not complete) or the links loop.
    public static func chain(of backup: BackupRecord, in backups: [BackupRecord]) throws(Problem) -> [BackupRecord] {
        try chain(of: backup, in: index(backups))
    }

    static func chain(of backup: BackupRecord, in byLabel: [String: BackupRecord]) throws(Problem) -> [BackupRecord] {
        var out = [backup]
        var seen: Set<String> = [backup.label]
        var current = backup
        while current.type == .incremental, let p = current.parent {
            guard let parent = byLabel[p], parent.status == .complete else { throw .missingParent(label: current.label, parent: p) }
            guard seen.insert(p).inserted else { throw .cycle(label: backup.label) }
            out.append(parent)
            current = parent
        }
        return out.reversed()
    }

    /// Every backup that builds on `label`, directly or through others (the ones that cannot be
    /// restored without it), in no particular order.
    public static func dependents(of label: String, in backups: [BackupRecord]) -> [BackupRecord] {
        var children: [String: [BackupRecord]] = [:]
        for b in backups where b.type == .incremental { if let p = b.parent { children[p, default: []].append(b) } }
        var out: [BackupRecord] = []
        var seen: Set<String> = [label]
        var stack = [label]
        while let l = stack.popLast() {
            for c in children[l] ?? [] where seen.insert(c.label).inserted {
                out.append(c); stack.append(c.label)
            }
        }
        return out
    }

    /// The full backup at the root of `backup`'s chain (itself when full); nil when the chain is broken.
    public static func root(of backup: BackupRecord, in backups: [BackupRecord]) -> BackupRecord? {
        (try? chain(of: backup, in: backups))?.first
    }

    private static func index(_ backups: [BackupRecord]) -> [String: BackupRecord] {
        var byLabel: [String: BackupRecord] = [:]
        for b in backups { byLabel[b.label] = b }
        return byLabel
    }
}
