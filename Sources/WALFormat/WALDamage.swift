/// Damage found in a complete WAL segment: where PostgreSQL's own reader would stop replaying it.
public struct WALDamage: Equatable, Sendable, CustomStringConvertible {
    /// The first damaged LSN: the first record that fails its CRC, or where valid WAL stops,
    /// whichever comes first.
    public var lsn: LSN
    /// What is wrong, for operators (names the LSNs).
    public var reason: String

    public init(lsn: LSN, reason: String) { self.lsn = lsn; self.reason = reason }

    public var description: String { "at \(lsn): \(reason)" }
}

extension SegmentSummary {
    /// The one rule for "this archived WAL is damaged", for archive-push (which warns and records
    /// `damagedAt` / `damageReason`), verify and info. It reads only fields every stored summary has, so
    /// it also judges metas written before `damagedAt` existed.
    ///
    /// A **complete segment** (`.segment`) is damaged when a record fails its CRC-32C
    /// (`crcFailures > 0`) or when valid WAL stops inside it (`endOfWAL` set): a complete segment's
    /// records run to its end, into the next segment, or up to an XLOG_SWITCH record (the zeroed rest
    /// after a switch is not read, so `endOfWAL` stays nil). A record continued in the next segment is
    /// not damage (`continuesIntoNext`, its CRC is not checked).
    ///
    /// `.partial` segments end where written WAL ended (a zeroed tail, possibly a torn last record),
    /// so they are never judged damaged; history and backup history files carry no WAL.
    public func damage(for name: WALFileName) -> WALDamage? {
        guard case .segment = name else { return nil }
        var parts: [String] = []
        var first: LSN?
        if crcFailures > 0 {
            let at = crcFailureLSNs.first
            parts.append(crcFailures == 1 ? "a record fails its CRC-32C" + (at.map { " (at \($0))" } ?? "")
                         : "\(crcFailures) records fail their CRC-32C" + (at.map { " (the first at \($0))" } ?? ""))
            first = at
        }
        if let end = endOfWAL {
            parts.append("valid WAL stops at \(end) before the end of the segment" + (endOfWALReason.map { " (\($0))" } ?? ""))
            if first.map({ end < $0 }) ?? true { first = end }
        }
        guard !parts.isEmpty else { return nil }
        return WALDamage(lsn: first ?? firstLSN ?? LSN(0), reason: parts.joined(separator: "; "))
    }
}
