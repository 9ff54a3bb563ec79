import Foundation
import Storage
import WALFormat

/// One thing `walctl expire` is removing, journaled in the catalog (table `expiring`) before the
/// first repository object goes: the catalog stops listing it at once (no plan uses it any more),
/// and `verify` / `info` do not call its objects still in the repository stale. A second expire
/// finishes every journaled item (docs/retention.md, "Order of removal").
public enum ExpiryItem: Equatable, Hashable, Sendable, Codable {
    /// Complete segments `first...last` of a timeline (and their skip markers, restore points).
    case wal(timeline: TimeLineID, first: XLogSegNo, last: XLogSegNo)
    /// A `.partial`, `.history` or `.backup` file, by name.
    case file(name: String)
    /// A base backup, by label: its row stays (status `expired`) until its objects are gone.
    case backup(label: String)
}

/// The journaled items, for "is this name being expired?" without a query per name.
public struct ExpiryFilter: Sendable {
    public var ranges: [TimeLineID: [ClosedRange<XLogSegNo>]] = [:]
    public var files: Set<String> = []
    public var labels: Set<String> = []
    public init() {}
    public var isEmpty: Bool { ranges.isEmpty && files.isEmpty && labels.isEmpty }

    /// True when `name` (a segment, `.partial`, history or backup-history file) is being expired.
    public func contains(name: String, segmentSize: WALSegmentSize) -> Bool {
        if files.contains(name) { return true }
        guard case .segment(let s)? = WALFileName(name), let id = SegmentID(fileName: s, size: segmentSize) else { return false }
        return ranges[id.timeline]?.contains { $0.contains(id.segno) } ?? false
    }
}

/// `walctl info`'s retention block: the settings, the window they guarantee and the window that exists.
public struct RetentionStatus: Codable, Equatable, Sendable {
    /// The settings as configured (nil: unset).
    public var window: String?
    public var full: Int?
    public var archiveFull: Int?
    public var expireAuto: Bool
    /// now - retention-window: what the policy promises is recoverable from (nil without a window).
    public var guaranteedFrom: PGTimestamp?
    /// The earliest instant recoverable on the newest timeline, and its backup (nil: none).
    public var existsFrom: PGTimestamp?
    public var existsFromBackup: String?
    public init(window: String?, full: Int?, archiveFull: Int?, expireAuto: Bool, guaranteedFrom: PGTimestamp?,
                existsFrom: PGTimestamp?, existsFromBackup: String?) {
        self.window = window; self.full = full; self.archiveFull = archiveFull; self.expireAuto = expireAuto
        self.guaranteedFrom = guaranteedFrom; self.existsFrom = existsFrom; self.existsFromBackup = existsFromBackup
    }
}

extension Catalog {
    static let expiringTable = """
        CREATE TABLE IF NOT EXISTS expiring(
            repo INTEGER NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            timeline INTEGER NOT NULL,
            first_segno INTEGER NOT NULL,
            last_segno INTEGER NOT NULL,
            PRIMARY KEY(repo, kind, name, timeline, first_segno)
        ) WITHOUT ROWID
        """

    private func hasExpiringTable() throws(CatalogError) -> Bool {
        (try conn.scalar("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='expiring'") ?? 0) > 0
    }

    /// Journals `items` and removes them from the catalog's answers, in one transaction: segment
    /// rows (with runs, counters, restore points, skip rows and `reach`), file rows, and backups
    /// marked `expired`.
    public func beginExpiry(_ items: [ExpiryItem]) throws(CatalogError) {
        guard !items.isEmpty else { return }
        try conn.exec(Self.expiringTable)
        try write { () throws(CatalogError) in
            let ins = "INSERT OR REPLACE INTO expiring(repo, kind, name, timeline, first_segno, last_segno) VALUES(?,?,?,?,?,?)"
            for item in items {
                switch item {
                case .wal(let tl, let a, let b):
                    try conn.prepare(ins).run([.int(repo), .text("wal"), .text(""), .int(Int64(tl)), .int(Int64(bitPattern: a)), .int(Int64(bitPattern: b))])
                    try removeSegmentRows(timeline: tl, from: a, to: b)
                case .file(let name):
                    try conn.prepare(ins).run([.int(repo), .text("file"), .text(name), .int(0), .int(0), .int(0)])
                    try removeArchivedFile(named: name)
                case .backup(let label):
                    try conn.prepare(ins).run([.int(repo), .text("backup"), .text(label), .int(0), .int(0), .int(0)])
                    if var b = try backup(label: label) {
                        b.status = .expired
                        try insertBackup(b)
                    }
                }
            }
        }
    }

    /// The items a previous expire journaled and did not finish (a killed run), in journal order.
    public func pendingExpiry() throws(CatalogError) -> [ExpiryItem] {
        guard try hasExpiringTable() else { return [] }
        let s = try conn.prepare("SELECT kind, name, timeline, first_segno, last_segno FROM expiring WHERE repo=? ORDER BY kind, name, timeline, first_segno")
        try s.bind([.int(repo)])
        defer { s.reset() }
        var out: [ExpiryItem] = []
        while try s.step() {
            switch s.text(0) {
            case "wal": out.append(.wal(timeline: TimeLineID(truncatingIfNeeded: s.int64(2)), first: UInt64(bitPattern: s.int64(3)), last: UInt64(bitPattern: s.int64(4))))
            case "file": out.append(.file(name: s.text(1)))
            default: out.append(.backup(label: s.text(1)))
            }
        }
        // Backups first (their marker goes first), then files and WAL.
        return out.filter { if case .backup = $0 { return true }; return false } + out.filter { if case .backup = $0 { return false }; return true }
    }

    /// The journaled items as a filter (empty when nothing is being expired).
    public func expiryFilter() throws(CatalogError) -> ExpiryFilter {
        var f = ExpiryFilter()
        for item in try pendingExpiry() {
            switch item {
            case .wal(let tl, let a, let b): f.ranges[tl, default: []].append(a...b)
            case .file(let n): f.files.insert(n)
            case .backup(let l): f.labels.insert(l)
            }
        }
        return f
    }

    /// Ends the journal of `items` once their objects are gone: the rows of expired backups go too.
    public func finishExpiry(_ items: [ExpiryItem]) throws(CatalogError) {
        guard !items.isEmpty, try hasExpiringTable() else { return }
        try write { () throws(CatalogError) in
            for item in items {
                switch item {
                case .wal(let tl, let a, _):
                    try conn.prepare("DELETE FROM expiring WHERE repo=? AND kind='wal' AND timeline=? AND first_segno=?")
                        .run([.int(repo), .int(Int64(tl)), .int(Int64(bitPattern: a))])
                case .file(let name):
                    try conn.prepare("DELETE FROM expiring WHERE repo=? AND kind='file' AND name=?").run([.int(repo), .text(name)])
                case .backup(let label):
                    try conn.prepare("DELETE FROM expiring WHERE repo=? AND kind='backup' AND name=?").run([.int(repo), .text(label)])
                    try conn.prepare("DELETE FROM backup WHERE repo=? AND label=? AND status='expired'").run([.int(repo), .text(label)])
                }
            }
        }
    }

    /// Sets or clears a backup's `pinned` flag in its catalog row (the repository's marker object is
    /// the truth; `rebuild` restores the flag from it).
    public func setPinned(label: String, _ pinned: Bool) throws(CatalogError) {
        try write { () throws(CatalogError) in
            guard var b = try backup(label: label) else { return }
            b.pinned = pinned ? true : nil
            try insertBackup(b)
        }
    }

    /// Removes the rows of complete segments `from...to` of `timeline`, keeping the derived tables
    /// right: counters, runs (trimmed or split), restore points, skip rows, and `reach` of the rows
    /// after the range. Cost: one range delete plus the rows whose `reach` changes.
    func removeSegmentRows(timeline: TimeLineID, from: XLogSegNo, to: XLogSegNo) throws(CatalogError) {
        guard from <= to else { return }
        let tl = Int64(timeline), a = Int64(bitPattern: from), b = Int64(bitPattern: min(to, XLogSegNo(Int64.max)))
        let c = try conn.prepare("SELECT count(*), coalesce(sum(size),0), coalesce(sum(stored_size),0) FROM segment WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ?")
        try c.bind([.int(repo), .int(tl), .int(a), .int(b)])
        var count: Int64 = 0, size: Int64 = 0, stored: Int64 = 0
        if try c.step() { count = c.int64(0); size = c.int64(1); stored = c.int64(2) }
        c.reset()
        for t in ["segment", "restore_point", "skipped_segment"] {
            try conn.prepare("DELETE FROM \(t) WHERE repo=? AND timeline=? AND segno BETWEEN ? AND ?").run([.int(repo), .int(tl), .int(a), .int(b)])
        }
        if count > 0 {
            try conn.prepare("UPDATE timeline_stats SET segments=segments-?, bytes=bytes-?, stored_bytes=stored_bytes-? WHERE repo=? AND timeline=?")
                .run([.int(count), .int(size), .int(stored), .int(repo), .int(tl)])
            try conn.prepare("DELETE FROM timeline_stats WHERE repo=? AND timeline=? AND segments<=0").run([.int(repo), .int(tl)])
        }
        // Runs overlapping the range: trimmed or split.
        var runs: [(Int64, Int64)] = []
        let r1 = try conn.prepare("SELECT first_segno, last_segno FROM run WHERE repo=? AND timeline=? AND first_segno<? ORDER BY first_segno DESC LIMIT 1")
        try r1.bind([.int(repo), .int(tl), .int(a)])
        if try r1.step(), r1.int64(1) >= a { runs.append((r1.int64(0), r1.int64(1))) }
        r1.reset()
        let r2 = try conn.prepare("SELECT first_segno, last_segno FROM run WHERE repo=? AND timeline=? AND first_segno BETWEEN ? AND ?")
        try r2.bind([.int(repo), .int(tl), .int(a), .int(b)])
        while try r2.step() { runs.append((r2.int64(0), r2.int64(1))) }
        r2.reset()
        for (first, last) in runs {
            try conn.prepare("DELETE FROM run WHERE repo=? AND timeline=? AND first_segno=?").run([.int(repo), .int(tl), .int(first)])
            if first < a {
                try conn.prepare("INSERT INTO run(repo, timeline, first_segno, last_segno) VALUES(?,?,?,?)").run([.int(repo), .int(tl), .int(first), .int(a - 1)])
            }
            if last > b {
                try conn.prepare("INSERT INTO run(repo, timeline, first_segno, last_segno) VALUES(?,?,?,?)").run([.int(repo), .int(tl), .int(b + 1), .int(last)])
            }
        }
        // reach after the range: the running maximum from the predecessor on, until it is already right.
        var running = try conn.scalar("SELECT reach FROM segment WHERE repo=? AND timeline=? AND segno<? ORDER BY segno DESC LIMIT 1",
                                      [.int(repo), .int(tl), .int(a)])
        let s = try conn.prepare("SELECT segno, last_xact, reach FROM segment WHERE repo=? AND timeline=? AND segno>? ORDER BY segno")
        try s.bind([.int(repo), .int(tl), .int(b)])
        var updates: [(Int64, Int64?)] = []
        while try s.step() {
            let next = maxOpt(running, s.int64OrNil(1))
            if next == s.int64OrNil(2) { break }
            updates.append((s.int64(0), next)); running = next
        }
        s.reset()
        for (m, v) in updates {
            try conn.prepare("UPDATE segment SET reach=? WHERE repo=? AND timeline=? AND segno=?").run([.opt(v), .int(repo), .int(tl), .int(m)])
        }
    }

    /// The backup labels with a pin marker (`backup/<label>/pinned`) in `keys` (a listing of `backup/`).
    public static func pinnedLabels(in keys: [String]) -> Set<String> {
        Set(keys.filter { $0.hasSuffix("/pinned") && $0.dropFirst(RepositoryLayout.backupPrefix.count).split(separator: "/").count == 2 }
            .compactMap { $0.dropFirst(RepositoryLayout.backupPrefix.count).split(separator: "/").first.map(String.init) })
    }
}
