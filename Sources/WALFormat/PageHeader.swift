/// WAL page constants shared by PostgreSQL 12-18.
public enum WALPage {
    /// `XLOG_BLCKSZ`: the only WAL block size walctl accepts (PostgreSQL's compile-time default).
    public static let blockSize = 8192
    public static let shortHeaderSize = 24
    public static let longHeaderSize = 40
    public static let firstIsContRecord: UInt16 = 0x0001
    public static let longHeader: UInt16 = 0x0002
    /// `XLP_FIRST_IS_OVERWRITE_CONTRECORD`: the record continued into this page was abandoned.
    public static let firstIsOverwriteContRecord: UInt16 = 0x0008
    public static let allFlags: UInt16 = 0x000F
}

/// The major PostgreSQL version a WAL page magic (`XLOG_PAGE_MAGIC`) belongs to.
public enum WALMagic {
    /// Known magic values, PostgreSQL 12 to 18.
    public static let versions: [UInt16: Int] = [
        0xD101: 12, 0xD106: 13, 0xD10D: 14, 0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18,
    ]
    public static func majorVersion(_ magic: UInt16) -> Int? { versions[magic] }
}

/// The long page header at the start of every WAL segment (`XLogLongPageHeaderData`).
public struct LongPageHeader: Equatable, Sendable {
    public var magic: UInt16
    public var info: UInt16
    public var timeline: TimeLineID
    public var pageAddress: LSN
    public var remainingLength: UInt32
    public var systemIdentifier: UInt64
    public var segmentSize: UInt32
    public var blockSize: UInt32

    /// The PostgreSQL major version of the magic, or nil when unknown.
    public var majorVersion: Int? { WALMagic.majorVersion(magic) }

    /// Decodes the header from the first 40 bytes of a segment.
    public init(bytes: UnsafeRawBufferPointer) throws(WALFormatError) {
        guard bytes.count >= WALPage.longHeaderSize else {
            throw .truncated(needed: WALPage.longHeaderSize, have: bytes.count)
        }
        let short = try WALPageHeader(bytes: bytes)
        magic = short.magic
        info = short.info
        timeline = short.timeline
        pageAddress = short.pageAddress
        remainingLength = short.remainingLength
        systemIdentifier = bytes.loadLE(UInt64.self, at: 24)
        segmentSize = bytes.loadLE(UInt32.self, at: 32)
        blockSize = bytes.loadLE(UInt32.self, at: 36)
    }

    /// What the archive expects of a segment before storing it.
    public struct Expectation: Sendable {
        public var segment: SegmentID
        public var segmentSize: WALSegmentSize
        public var systemIdentifier: UInt64?
        public init(segment: SegmentID, segmentSize: WALSegmentSize, systemIdentifier: UInt64?) {
            self.segment = segment; self.segmentSize = segmentSize; self.systemIdentifier = systemIdentifier
        }
    }

    /// Checks magic, flags, segment size, block size, page address and system identifier.
    ///
    /// `xlp_tli` may be lower than the timeline in the file name (the first segment of a new timeline
    /// starts as a copy of its parent's), so only `xlp_tli <= file timeline` is required.
    public func validate(_ e: Expectation) throws(WALFormatError) {
        guard majorVersion != nil else { throw .unknownMagic(magic) }
        guard info & WALPage.longHeader != 0, info & ~WALPage.allFlags == 0 else { throw .badPageFlags(info) }
        guard UInt64(segmentSize) == e.segmentSize.bytes else {
            throw .segmentSizeMismatch(header: UInt64(segmentSize), expected: e.segmentSize.bytes)
        }
        guard blockSize == UInt32(WALPage.blockSize) else { throw .blockSizeMismatch(blockSize) }
        let expectedAddress = LSN.start(of: e.segment.segno, size: e.segmentSize)
        guard pageAddress == expectedAddress else {
            throw .pageAddressMismatch(header: pageAddress, expected: expectedAddress)
        }
        guard timeline >= 1, timeline <= e.segment.timeline else {
            throw .timelineMismatch(header: timeline, fileName: e.segment.timeline)
        }
        if let sysid = e.systemIdentifier, sysid != systemIdentifier {
            throw .systemIdentifierMismatch(segment: systemIdentifier, repository: sysid)
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Loads a little-endian integer at an unaligned byte offset.
    @inline(__always)
    public func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
