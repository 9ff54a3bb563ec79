/// The identity of one WAL segment: timeline plus segment number.
public struct SegmentID: Hashable, Comparable, Sendable {
    public var timeline: TimeLineID
    public var segno: XLogSegNo
    public init(timeline: TimeLineID, segno: XLogSegNo) { self.timeline = timeline; self.segno = segno }

    public static func < (a: SegmentID, b: SegmentID) -> Bool {
        (a.segno, a.timeline) < (b.segno, b.timeline)
    }

    /// The 24-character file name `TTTTTTTTLLLLLLLLSSSSSSSS` for this segment at segment size `size`.
    public func fileName(size: WALSegmentSize) -> String {
        let per = size.segmentsPerXLogID
        return hex8(UInt64(timeline)) + hex8(segno / per) + hex8(segno % per)
    }

    /// Parses a 24-character segment name; `S` must be below `segmentsPerXLogID` for `size`.
    public init?(fileName name: some StringProtocol, size: WALSegmentSize) {
        guard name.utf8.count == 24, name.utf8.allSatisfy(isUpperHex),
              let t = UInt32(name.prefix(8), radix: 16),
              let log = UInt64(name.dropFirst(8).prefix(8), radix: 16),
              let seg = UInt64(name.suffix(8), radix: 16) else { return nil }
        let per = size.segmentsPerXLogID
        guard t != 0, seg < per else { return nil }
        self.timeline = t
        self.segno = log * per + seg
    }
}

@inline(__always) func isUpperHex(_ c: UInt8) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46)
}

/// Eight upper-case hex digits, zero padded, as PostgreSQL's `%08X`.
public func hex8(_ v: UInt64) -> String {
    let s = String(UInt32(truncatingIfNeeded: v), radix: 16, uppercase: true)
    return String(repeating: "0", count: 8 - s.count) + s
}

/// A file name that PostgreSQL hands to archive_command or asks restore_command for.
///
/// The segment number inside names is kept as the raw `LLLLLLLL`/`SSSSSSSS` pair until a segment size
/// is known, because the split depends on it.
public enum WALFileName: Hashable, Sendable, CustomStringConvertible {
    /// `TTTTTTTTLLLLLLLLSSSSSSSS`: a complete WAL segment.
    case segment(String)
    /// `TTTTTTTTLLLLLLLLSSSSSSSS.partial`: the last, incomplete segment of an old timeline.
    case partial(String)
    /// `TTTTTTTT.history`: a timeline history file.
    case history(TimeLineID)
    /// `TTTTTTTTLLLLLLLLSSSSSSSS.OOOOOOOO.backup`: a backup history file.
    case backupHistory(segment: String, offset: UInt32)

    /// Parses a bare file name. Anything else (a path, `..`, lower-case hex, another suffix) is nil.
    public init?(_ name: String) {
        let u = Array(name.utf8)
        func hexRun(_ r: Range<Int>) -> Bool { r.upperBound <= u.count && u[r].allSatisfy(isUpperHex) }
        switch u.count {
        case 24 where hexRun(0..<24):
            self = .segment(name)
        case 32 where hexRun(0..<24) && name.hasSuffix(".partial"):
            self = .partial(String(name.prefix(24)))
        case 16 where hexRun(0..<8) && name.hasSuffix(".history"):
            guard let t = UInt32(name.prefix(8), radix: 16), t > 0 else { return nil }
            self = .history(t)
        case 40 where hexRun(0..<24) && u[24] == 0x2E && hexRun(25..<33) && name.hasSuffix(".backup"):
            let off = UInt32(String(name.dropFirst(25).prefix(8)), radix: 16)!
            self = .backupHistory(segment: String(name.prefix(24)), offset: off)
        default:
            return nil
        }
    }

    public var description: String {
        switch self {
        case .segment(let s): return s
        case .partial(let s): return s + ".partial"
        case .history(let t): return hex8(UInt64(t)) + ".history"
        case .backupHistory(let s, let o): return s + "." + hex8(UInt64(o)) + ".backup"
        }
    }

    /// The 24-character segment name this file belongs to (nil for history files).
    public var segmentName: String? {
        switch self {
        case .segment(let s), .partial(let s), .backupHistory(let s, _): return s
        case .history: return nil
        }
    }

    /// The timeline named by the file.
    public var timeline: TimeLineID {
        switch self {
        case .history(let t): return t
        case .segment(let s), .partial(let s), .backupHistory(let s, _): return UInt32(s.prefix(8), radix: 16) ?? 0
        }
    }

    /// True for files that carry WAL pages (segments and partial segments).
    public var carriesWAL: Bool {
        switch self { case .segment, .partial: return true; default: return false }
    }
}
