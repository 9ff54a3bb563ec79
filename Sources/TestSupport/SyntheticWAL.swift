import WALFormat

/// Builds a stream of synthetic but well-formed WAL segments for tests: page headers (long on the
/// first page of each segment, `XLP_FIRST_IS_CONTRECORD` + `xlp_rem_len` on continuation pages),
/// MAXALIGNed records with block references, and correct CRC-32C.
///
/// ```swift
/// var wal = SyntheticWAL(segments: 2)
/// let lsn = wal.appendCommit(time: PGTimestamp(unixSeconds: 1_800_000_000))
/// wal.appendSwitch()
/// let summary = try wal.segment(0).withUnsafeBytes {
///     try SegmentSummary.scan($0, segmentSize: wal.segmentSize)
/// }
/// ```
public struct SyntheticWAL: Sendable {
    /// One block reference of a record (`XLogRecordBlockHeader` and what follows it).
    public struct Block: Sendable {
        public var id: UInt8
        public var fork: UInt8
        public var data: [UInt8]
        /// A full-page image (its stored bytes), with `bimg_info` and, for a compressed image with a
        /// hole, the hole length that follows the image header.
        public var image: [UInt8]?
        public var imageInfo: UInt8
        public var holeLength: UInt16?
        /// Omit the 12-byte relation locator (`BKPBLOCK_SAME_REL`).
        public var sameRelation: Bool
        public init(id: UInt8, fork: UInt8 = 0, data: [UInt8] = [], image: [UInt8]? = nil, imageInfo: UInt8 = 0,
                    holeLength: UInt16? = nil, sameRelation: Bool = false) {
            self.id = id; self.fork = fork; self.data = data; self.image = image; self.imageInfo = imageInfo
            self.holeLength = holeLength; self.sameRelation = sameRelation
        }
    }

    public let segmentSize: WALSegmentSize
    public let firstSegment: XLogSegNo
    public let magic: UInt16
    public let systemIdentifier: UInt64
    public let timeline: TimeLineID
    /// All segments, back to back. Tests may modify bytes to simulate damage.
    public var bytes: [UInt8]
    /// Offset (from the first segment's start) where the next record may begin.
    public private(set) var position: Int
    /// LSN of the last record appended (0 before the first).
    public private(set) var lastLSN: UInt64 = 0

    private static let page = 8192

    /// A stream of `segments` zeroed segments whose first page header is written.
    /// - Parameters:
    ///   - magic: page magic; 0xD110 is PostgreSQL 15 (see `WALMagic.versions`).
    ///   - previousLSN: `xl_prev` of the first record (as if earlier WAL existed).
    public init(segmentSize: WALSegmentSize = .default, segments: Int = 1, firstSegment: XLogSegNo = 1,
                magic: UInt16 = 0xD110, systemIdentifier: UInt64 = 7_712_321_645_893_095_454, timeline: TimeLineID = 1,
                previousLSN: UInt64? = nil) {
        self.segmentSize = segmentSize
        self.firstSegment = firstSegment
        self.magic = magic
        self.systemIdentifier = systemIdentifier
        self.timeline = timeline
        bytes = [UInt8](repeating: 0, count: Int(segmentSize.bytes) * segments)
        position = 0
        lastLSN = previousLSN ?? (firstSegment * segmentSize.bytes &- 0x60)
        writePageHeader(at: 0, remaining: nil)
        position = WALPage.longHeaderSize
    }

    /// The LSN of the stream's first byte.
    public var startLSN: UInt64 { firstSegment * segmentSize.bytes }
    /// The bytes of segment `i` (0 is `firstSegment`).
    public func segment(_ i: Int) -> [UInt8] {
        let n = Int(segmentSize.bytes)
        return Array(bytes[i * n ..< (i + 1) * n])
    }
    /// Offset in `bytes` of an LSN.
    public func offset(of lsn: LSN) -> Int { Int(lsn.value - startLSN) }

    /// Encodes a record: header (with `xl_prev` = `previous`), block headers, optional origin header,
    /// data header, block images and data, main data; and its CRC-32C.
    public static func encodeRecord(rmid: UInt8, info: UInt8, xid: UInt32 = 0, previous: UInt64, mainData: [UInt8],
                                    blocks: [Block] = [], origin: UInt16? = nil) -> [UInt8] {
        var body: [UInt8] = []
        var payload: [UInt8] = []
        func le<T: FixedWidthInteger>(_ v: T, into a: inout [UInt8]) {
            withUnsafeBytes(of: v.littleEndian) { a.append(contentsOf: $0) }
        }
        for b in blocks {
            var flags = b.fork & 0x0F
            if b.image != nil { flags |= 0x10 }
            if !b.data.isEmpty { flags |= 0x20 }
            if b.sameRelation { flags |= 0x80 }
            body.append(b.id)
            body.append(flags)
            le(UInt16(b.data.count), into: &body)
            if let img = b.image {
                le(UInt16(img.count), into: &body)
                le(UInt16(100), into: &body)  // hole offset
                body.append(b.imageInfo)
                if let hole = b.holeLength { le(hole, into: &body) }
                payload += img
            }
            if !b.sameRelation { for v: UInt32 in [1663, 5, 16384] { le(v, into: &body) } }
            le(UInt32(7), into: &body)  // block number
            payload += b.data
        }
        if let o = origin { body.append(253); le(o, into: &body) }
        if !mainData.isEmpty {
            if mainData.count < 256 {
                body.append(255); body.append(UInt8(mainData.count))
            } else {
                body.append(254); le(UInt32(mainData.count), into: &body)
            }
        }
        let rest = body + payload + mainData
        var rec: [UInt8] = []
        le(UInt32(24 + rest.count), into: &rec)
        le(xid, into: &rec)
        le(previous, into: &rec)
        rec.append(info)
        rec.append(rmid)
        rec += [0, 0]
        rec += [0, 0, 0, 0]
        rec += rest
        var crc = CRC32C()
        rec.withUnsafeBytes { r in
            crc.update(UnsafeRawBufferPointer(rebasing: r[24...]))
            crc.update(UnsafeRawBufferPointer(rebasing: r[..<20]))
        }
        let c = crc.value
        for i in 0..<4 { rec[20 + i] = UInt8(truncatingIfNeeded: c >> (8 * i)) }
        return rec
    }

    /// Appends a record built by `encodeRecord` at the next MAXALIGNed position, splitting it across
    /// pages (and segments) as PostgreSQL does. Returns its LSN.
    @discardableResult
    public mutating func append(rmid: UInt8, info: UInt8, xid: UInt32 = 0, mainData: [UInt8] = [],
                                blocks: [Block] = [], origin: UInt16? = nil) -> LSN {
        let rec = Self.encodeRecord(rmid: rmid, info: info, xid: xid, previous: lastLSN, mainData: mainData,
                                    blocks: blocks, origin: origin)
        return appendRaw(rec)
    }

    /// Appends already encoded record bytes (which may be deliberately wrong).
    @discardableResult
    public mutating func appendRaw(_ rec: [UInt8]) -> LSN {
        position = (position + 7) & ~7
        if position % Self.page == 0 { writePageHeader(at: position, remaining: nil); position += headerSize(at: position) }
        let lsn = startLSN + UInt64(position)
        var i = 0
        while i < rec.count {
            if position % Self.page == 0 {
                writePageHeader(at: position, remaining: rec.count - i)
                position += headerSize(at: position)
            }
            let n = min(rec.count - i, Self.page - position % Self.page)
            precondition(position + n <= bytes.count, "SyntheticWAL: stream is full; create it with more segments")
            bytes.replaceSubrange(position ..< position + n, with: rec[i ..< i + n])
            position += n
            i += n
        }
        lastLSN = lsn
        return LSN(lsn)
    }

    /// A COMMIT (or COMMIT_PREPARED) record with `xact_time`, xinfo and a dbinfo section.
    @discardableResult
    public mutating func appendCommit(time: PGTimestamp, prepared: Bool = false, xid: UInt32 = 700) -> LSN {
        appendXact(op: prepared ? 0x30 : 0x00, time: time, xid: xid)
    }

    /// An ABORT (or ABORT_PREPARED) record with `xact_time`.
    @discardableResult
    public mutating func appendAbort(time: PGTimestamp, prepared: Bool = false, xid: UInt32 = 701) -> LSN {
        appendXact(op: prepared ? 0x40 : 0x20, time: time, xid: xid)
    }

    private mutating func appendXact(op: UInt8, time: PGTimestamp, xid: UInt32) -> LSN {
        var main: [UInt8] = []
        withUnsafeBytes(of: time.microseconds.littleEndian) { main += $0 }
        withUnsafeBytes(of: UInt32(0x01).littleEndian) { main += $0 }  // xinfo: HAS_DBINFO
        withUnsafeBytes(of: UInt64(0x0000_0677_0000_0005).littleEndian) { main += $0 }
        return append(rmid: 1, info: op | 0x80, xid: xid, mainData: main)
    }

    /// An XLOG_RESTORE_POINT record (`rp_time`, 64-byte `rp_name` padded with `fill` after the NUL).
    @discardableResult
    public mutating func appendRestorePoint(name: String, time: PGTimestamp, fill: UInt8 = 0xAB) -> LSN {
        var main: [UInt8] = []
        withUnsafeBytes(of: time.microseconds.littleEndian) { main += $0 }
        var n = Array(name.utf8.prefix(63)) + [0]
        n += [UInt8](repeating: fill, count: 64 - n.count)
        return append(rmid: 0, info: 0x70, mainData: main + n)
    }

    /// A checkpoint record (88-byte `CheckPoint` with `time` at offset 64).
    @discardableResult
    public mutating func appendCheckpoint(unixSeconds: Int64, shutdown: Bool) -> LSN {
        var main = [UInt8](repeating: 0, count: 88)
        withUnsafeBytes(of: unixSeconds.littleEndian) { main.replaceSubrange(64..<72, with: $0) }
        return append(rmid: 0, info: shutdown ? 0x00 : 0x10, mainData: main)
    }

    /// An XLOG_SWITCH record; the rest of its segment stays zero and the next record starts in the next
    /// segment (if the stream has one).
    @discardableResult
    public mutating func appendSwitch() -> LSN {
        let lsn = append(rmid: 0, info: 0x40)
        let seg = Int(segmentSize.bytes)
        position = (position + seg - 1) / seg * seg
        if position < bytes.count { writePageHeader(at: position, remaining: nil); position += headerSize(at: position) }
        return lsn
    }

    /// A heap-like record of about `size` bytes with one block reference carrying a full-page image
    /// (compressed with a hole: exercises the optional hole-length field) and data.
    @discardableResult
    public mutating func appendFiller(size: Int, withImage: Bool = true) -> LSN {
        let pre15 = (WALMagic.majorVersion(magic) ?? 15) < 15
        let imageBytes = withImage ? max(0, size / 2) : 0
        let block = Block(id: 0, data: [UInt8](repeating: 0x11, count: 20),
                          image: withImage ? [UInt8](repeating: 0x22, count: imageBytes) : nil,
                          imageInfo: pre15 ? 0x01 | 0x02 : 0x01 | 0x04, holeLength: withImage ? 40 : nil)
        let main = [UInt8](repeating: 0x33, count: max(1, size - imageBytes - 80))
        return append(rmid: 10, info: 0x00, xid: 702, mainData: main, blocks: [block])
    }

    /// Appends a filler record of exactly `total` bytes (at least 27), header included.
    @discardableResult
    public mutating func appendExact(total: Int) -> LSN {
        precondition(total >= 27, "a record with main data has at least 27 bytes")
        let main = total - 26 < 256 ? total - 26 : total - 29
        return append(rmid: 10, info: 0x00, mainData: [UInt8](repeating: 0x44, count: main))
    }

    /// Appends filler records until the current page is full, so that the next record starts right
    /// after the next page's header.
    public mutating func fillPage() {
        while true {
            let a = (position + 7) & ~7
            if a % Self.page == 0 { position = a; return }
            let rest = Self.page - a % Self.page
            appendExact(total: rest >= 32 ? rest : rest + 100)
        }
    }

    private func headerSize(at off: Int) -> Int {
        off % Int(segmentSize.bytes) == 0 ? WALPage.longHeaderSize : WALPage.shortHeaderSize
    }

    private mutating func writePageHeader(at off: Int, remaining: Int?) {
        let long = off % Int(segmentSize.bytes) == 0
        var h: [UInt8] = []
        var info: UInt16 = 0x0004
        if long { info |= WALPage.longHeader }
        if remaining != nil { info |= WALPage.firstIsContRecord }
        withUnsafeBytes(of: magic.littleEndian) { h += $0 }
        withUnsafeBytes(of: info.littleEndian) { h += $0 }
        withUnsafeBytes(of: timeline.littleEndian) { h += $0 }
        withUnsafeBytes(of: (startLSN + UInt64(off)).littleEndian) { h += $0 }
        withUnsafeBytes(of: UInt32(remaining ?? 0).littleEndian) { h += $0 }
        h += [0, 0, 0, 0]
        if long {
            withUnsafeBytes(of: systemIdentifier.littleEndian) { h += $0 }
            withUnsafeBytes(of: UInt32(segmentSize.bytes).littleEndian) { h += $0 }
            withUnsafeBytes(of: UInt32(Self.page).littleEndian) { h += $0 }
        }
        bytes.replaceSubrange(off ..< off + h.count, with: h)
    }
}
