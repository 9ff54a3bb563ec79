/// A WAL location (XLogRecPtr): a 64-bit byte position in the WAL stream.
///
/// Printed the way PostgreSQL prints it, `%X/%X` (high / low 32 bits, no padding).
public struct LSN: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }

    public static let invalid = LSN(0)

    /// Parses `X/Y` in hex, with or without zero padding (`0/301ED90`, `0/0301ED90`).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              let hi = UInt32(parts[0], radix: 16), let lo = UInt32(parts[1], radix: 16) else { return nil }
        self.value = UInt64(hi) << 32 | UInt64(lo)
    }

    public var description: String {
        String(UInt32(truncatingIfNeeded: value >> 32), radix: 16, uppercase: true) + "/" +
            String(UInt32(truncatingIfNeeded: value), radix: 16, uppercase: true)
    }

    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }
    public static func + (a: LSN, b: UInt64) -> LSN { LSN(a.value &+ b) }
}

/// A timeline ID (TimeLineID). Timeline 1 is the one initdb creates.
public typealias TimeLineID = UInt32

/// A WAL segment size in bytes: a power of two from 1 MiB to 1 GiB (`IsValidWalSegSize`).
public struct WALSegmentSize: Hashable, Sendable, CustomStringConvertible {
    public let bytes: UInt64
    public init?(bytes: UInt64) {
        guard bytes >= 1 << 20, bytes <= 1 << 30, bytes & (bytes - 1) == 0 else { return nil }
        self.bytes = bytes
    }
    /// The default 16 MiB.
    public static let `default` = WALSegmentSize(bytes: 16 << 20)!
    /// Segments per "log" id (`XLogSegmentsPerXLogId`): 0x100000000 / size.
    public var segmentsPerXLogID: UInt64 { 0x1_0000_0000 / bytes }
    public var description: String { "\(bytes / (1 << 20)) MiB" }
}

/// A segment number: the LSN of the segment's first byte divided by the segment size.
public typealias XLogSegNo = UInt64

extension LSN {
    /// The segment that contains this byte position.
    public func segment(size: WALSegmentSize) -> XLogSegNo { value / size.bytes }
    /// The offset of this position inside its segment.
    public func offset(size: WALSegmentSize) -> UInt64 { value & (size.bytes - 1) }
    /// The first byte of segment `segno`.
    public static func start(of segno: XLogSegNo, size: WALSegmentSize) -> LSN { LSN(segno &* size.bytes) }
}
