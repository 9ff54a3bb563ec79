/// One line of a timeline history file: `parentTLI <TAB> switchpoint <TAB> reason`.
public struct TimelineHistoryEntry: Equatable, Sendable {
    /// The ancestor timeline.
    public var timeline: TimeLineID
    /// The LSN where the child timeline branched off `timeline`: WAL of `timeline` at or after it
    /// is not part of the child's history.
    public var switchPoint: LSN
    public var reason: String
    public init(timeline: TimeLineID, switchPoint: LSN, reason: String) {
        self.timeline = timeline; self.switchPoint = switchPoint; self.reason = reason
    }
}

/// The parsed contents of `TTTTTTTT.history`: the ancestry of `timeline`, oldest first.
public struct TimelineHistory: Equatable, Sendable {
    public var timeline: TimeLineID
    public var entries: [TimelineHistoryEntry]

    public init(timeline: TimeLineID, entries: [TimelineHistoryEntry]) {
        self.timeline = timeline; self.entries = entries
    }

    /// Parses the file text. Blank lines and `#` comments are skipped, as the server does.
    public init(timeline: TimeLineID, text: String) throws(WALFormatError) {
        var entries: [TimelineHistoryEntry] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.drop(while: { $0 == " " || $0 == "\t" })
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count >= 2, let t = UInt32(fields[0].trimmingSpaces),
                  let lsn = LSN(fields[1].trimmingSpaces) else {
                throw .malformedHistory(line: i + 1, text: String(raw))
            }
            entries.append(.init(timeline: t, switchPoint: lsn, reason: fields.count > 2 ? String(fields[2]) : ""))
        }
        self.timeline = timeline
        self.entries = entries
    }

    /// The timeline that owns `lsn` on the path to `timeline`.
    public func timeline(at lsn: LSN) -> TimeLineID {
        for e in entries where lsn < e.switchPoint { return e.timeline }
        return timeline
    }

    /// All timelines on the path, oldest first, with the LSN range each one covers.
    public var path: [(timeline: TimeLineID, begin: LSN, end: LSN?)] {
        var out: [(TimeLineID, LSN, LSN?)] = []
        var begin = LSN(0)
        for e in entries { out.append((e.timeline, begin, e.switchPoint)); begin = e.switchPoint }
        out.append((timeline, begin, nil))
        return out
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return s
    }
}

extension TimelineHistory {
    /// Checks what PostgreSQL guarantees of a history file it writes (`readTimeLineHistory` and
    /// `writeTimeLineHistory`): a timeline above 1 (timeline 1 has no history file), at least one
    /// ancestor line, ancestor timelines strictly increasing and all below this timeline, and switch
    /// points strictly increasing. Whether the ancestors are archived is the caller's check.
    public func validate() throws(WALFormatError) {
        guard timeline > 1 else { throw .invalidHistory("timeline 1 has no history file") }
        guard !entries.isEmpty else {
            throw .invalidHistory("no ancestor line (an empty history file: PostgreSQL writes one line per ancestor timeline)")
        }
        var previous: TimelineHistoryEntry?
        for (i, e) in entries.enumerated() {
            guard e.timeline >= 1 else { throw .invalidHistory("line \(i + 1) names timeline 0") }
            if let p = previous {
                guard e.timeline > p.timeline else {
                    throw .invalidHistory("timeline IDs must increase: line \(i + 1) names timeline \(e.timeline) after \(p.timeline)")
                }
                guard e.switchPoint > p.switchPoint else {
                    throw .invalidHistory("switch points must increase: line \(i + 1) has \(e.switchPoint) after \(p.switchPoint)")
                }
            }
            previous = e
        }
        if let last = entries.last, last.timeline >= timeline {
            throw .invalidHistory("its last parent, timeline \(last.timeline), is not below the file's timeline \(timeline)")
        }
    }
}
