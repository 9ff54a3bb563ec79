extension SegmentSummary {
    /// Reads one whole WAL segment and summarises the records that start in it.
    ///
    /// The decoder walks the segment's pages (short and long headers), follows records across page
    /// boundaries, skips the tail of a record continued from the previous segment
    /// (`XLP_FIRST_IS_CONTRECORD` + `xlp_rem_len`), skips block references to reach each interesting
    /// record's main data (PostgreSQL 15+ or pre-15 `bimg_info` bits, chosen by the page magic), and
    /// checks every record's CRC-32C. Only records that cross a page boundary *and* are interpreted
    /// (commit, abort, checkpoint, restore point) are copied; all others are checked in place, so the
    /// scan does no per-record allocation.
    ///
    /// **Counting rule.** A record belongs to the segment in which it starts. The tail of a record from
    /// the previous segment is skipped. A record that continues into the next segment is counted here
    /// and `continuesIntoNext` is set. If `following` holds the beginning of the next segment, that
    /// record is read whole: its CRC is checked and it is interpreted like any other. Otherwise its CRC
    /// is not checked (that is not a CRC failure), `lastRecordIncomplete` is set, and its fields are
    /// used only when they lie in this segment: the commit or abort still counts when its 24-byte header
    /// is here, and its time counts only when the first 8 bytes of its main data are here.
    ///
    /// A record whose CRC does not match is counted in `records` and `crcFailures` (its LSN in
    /// `crcFailureLSNs`) and is not interpreted; reading continues with the next record.
    ///
    /// **End of WAL.** Reading stops cleanly, without an error, at an XLOG_SWITCH record
    /// (`endsWithSwitch`), at the end of the segment, or where valid WAL ends: a zeroed page or a zero
    /// record length, a page with another magic, bad flags or an older page address (a recycled tail),
    /// an invalid record header, a `xl_prev` that does not point at the previous record, or a page that
    /// does not continue the record in progress. In those cases `endOfWAL` and `endOfWALReason` say
    /// where and why. Nothing on the input can make the scan crash, hang or read outside the buffers.
    ///
    /// - Parameters:
    ///   - segment: the whole segment file: exactly `segmentSize` bytes.
    ///   - segmentSize: the cluster's `wal_segment_size`; must equal `xlp_seg_size` on the first page.
    ///   - verifyCRC: check each record's CRC-32C (hardware accelerated where the CPU has SSE4.2).
    ///   - following: optionally, the next segment (or its first pages), used only to complete a record
    ///     that crosses the end of `segment`. A buffer whose pages do not carry the expected addresses
    ///     is ignored, as if absent.
    /// - Throws: `WALFormatError` when the buffer is not a segment this reader can read: wrong length
    ///   (`.fileSizeMismatch`), unknown page magic (`.unknownMagic`), a first page without the long
    ///   header (`.badPageFlags`), a segment or WAL block size other than expected, or a first page
    ///   address that is not at a segment boundary (`.pageAddressMismatch`).
    public static func scan(
        _ segment: UnsafeRawBufferPointer,
        segmentSize: WALSegmentSize,
        verifyCRC: Bool = true,
        following: UnsafeRawBufferPointer? = nil
    ) throws(WALFormatError) -> SegmentSummary {
        var scanner = try SegmentScanner(segment: segment, segmentSize: segmentSize,
                                         following: following, verifyCRC: verifyCRC)
        return scanner.run()
    }

    /// The CREATE TABLESPACE records that start in `segment` (their main data completed from
    /// `following` when they cross into it; one that cannot be completed is left out: recovery cannot
    /// replay it either). What `walctl drill` checks before it lets PostgreSQL replay the WAL: such a
    /// record makes the server create the tablespace at its recorded location.
    ///
    /// - Parameter stopAfter: a `recovery_target_time`: records after the first commit or abort
    ///   later than it are not replayed, so not collected; `stopped` says that commit was reached.
    public static func tablespaceCreations(
        _ segment: UnsafeRawBufferPointer, segmentSize: WALSegmentSize, following: UnsafeRawBufferPointer? = nil,
        stopAfter: PGTimestamp? = nil
    ) throws(WALFormatError) -> (creations: [TablespaceCreation], stopped: Bool) {
        var scanner = try SegmentScanner(segment: segment, segmentSize: segmentSize,
                                         following: following, verifyCRC: true)
        scanner.tablespaceCreations = []
        scanner.tablespaceStopAfter = stopAfter
        _ = scanner.run()
        return (scanner.tablespaceCreations ?? [], scanner.tablespaceStopReached)
    }

    /// Test hook: `scan` that also decodes the block headers of every record and reports how many were
    /// decoded and which did not add up to their length.
    static func scanCheckingBodies(
        _ segment: UnsafeRawBufferPointer, segmentSize: WALSegmentSize, following: UnsafeRawBufferPointer? = nil
    ) throws(WALFormatError) -> (summary: SegmentSummary, bodiesChecked: Int, undecodable: [LSN]) {
        var scanner = try SegmentScanner(segment: segment, segmentSize: segmentSize,
                                         following: following, verifyCRC: true)
        scanner.checkAllBodies = true
        let s = scanner.run()
        return (s, scanner.bodiesChecked, scanner.undecodableBodies)
    }
}

/// The decoder behind ``SegmentSummary/scan(_:segmentSize:verifyCRC:following:)``.
///
/// Positions are byte offsets from the start of the segment ("logical offsets"); offsets at or past
/// the segment size address the optional following buffer.
struct SegmentScanner {
    private static let pageSize = WALPage.blockSize
    private static let pageMask = WALPage.blockSize - 1
    private static let headerSize = WALRecordFormat.headerSize

    private let seg: UnsafeRawPointer
    private let next: UnsafeRawPointer?
    private let nextCount: Int
    private let segSize: Int
    private let segStart: UInt64
    private let magic: UInt16
    private let systemIdentifier: UInt64
    private let verify: Bool
    private let pre15: Bool
    private let firstInfo: UInt16
    private let firstRemLen: UInt32
    private var lastTimeline: TimeLineID
    private var summary = SegmentSummary()
    private var scratch: UnsafeMutableRawPointer?
    private var scratchCapacity = 0
    /// Test hook: decode the block headers of every complete record, not only interpreted ones, and
    /// collect the LSNs of records whose headers do not add up to `xl_tot_len`.
    var checkAllBodies = false
    /// Non-nil: collect CREATE TABLESPACE records (complete ones with a matching CRC).
    var tablespaceCreations: [TablespaceCreation]?
    /// Collect only before the first commit or abort later than this time (`recovery_target_time`).
    var tablespaceStopAfter: PGTimestamp?
    var tablespaceStopReached = false
    private(set) var bodiesChecked = 0
    private(set) var undecodableBodies: [LSN] = []

    init(segment: UnsafeRawBufferPointer, segmentSize: WALSegmentSize, following: UnsafeRawBufferPointer?,
         verifyCRC: Bool) throws(WALFormatError) {
        guard segment.count == Int(segmentSize.bytes), let base = segment.baseAddress else {
            throw .fileSizeMismatch(actual: segment.count, expected: segmentSize.bytes)
        }
        let h = try LongPageHeader(bytes: segment)
        guard let version = h.majorVersion else { throw .unknownMagic(h.magic) }
        guard h.info & WALPage.longHeader != 0, h.info & ~WALPage.allFlags == 0 else { throw .badPageFlags(h.info) }
        guard UInt64(h.segmentSize) == segmentSize.bytes else {
            throw .segmentSizeMismatch(header: UInt64(h.segmentSize), expected: segmentSize.bytes)
        }
        guard h.blockSize == UInt32(WALPage.blockSize) else { throw .blockSizeMismatch(h.blockSize) }
        let misalignment = h.pageAddress.value & (segmentSize.bytes - 1)
        guard misalignment == 0, h.pageAddress.value <= UInt64.max - 2 * segmentSize.bytes else {
            throw .pageAddressMismatch(header: h.pageAddress, expected: LSN(h.pageAddress.value &- misalignment))
        }
        seg = base
        if let f = following, let fb = f.baseAddress, f.count > 0 {
            next = fb; nextCount = f.count
        } else {
            next = nil; nextCount = 0
        }
        segSize = segment.count
        segStart = h.pageAddress.value
        magic = h.magic
        systemIdentifier = h.systemIdentifier
        verify = verifyCRC
        pre15 = version < 15
        firstInfo = h.info
        firstRemLen = h.remainingLength
        lastTimeline = h.timeline
        summary.pgMajorVersion = version
    }

    // MARK: Pages

    private enum PageCheck {
        /// `overwritten`: `XLP_FIRST_IS_OVERWRITE_CONTRECORD`, the record that was crossing into this
        /// page was abandoned at a crash and overwritten (an XLOG_OVERWRITE_CONTRECORD record follows).
        case ok(headerSize: Int, continuation: Bool, remainingLength: Int, overwritten: Bool)
        /// Valid WAL ends at this page (reason for the operator).
        case end(String)
    }

    /// Start of the bytes at logical offset `off` and how many are readable from there to the end of
    /// its buffer; nil when the offset lies beyond both buffers.
    @inline(__always)
    private func bytes(at off: Int) -> (UnsafeRawPointer, Int)? {
        if off < segSize { return (seg + off, segSize - off) }
        let q = off - segSize
        guard let n = next, q < nextCount else { return nil }
        return (n + q, nextCount - q)
    }

    private func lsnText(_ off: Int) -> String { LSN(segStart &+ UInt64(off)).description }

    /// Validates the header of the page that starts at logical offset `p` (a multiple of 8192).
    private mutating func checkPage(_ p: Int) -> PageCheck {
        guard let (b, n) = bytes(at: p), n >= WALPage.shortHeaderSize else {
            return .end("the next segment is not available")
        }
        let raw = UnsafeRawBufferPointer(start: b, count: min(n, Self.pageSize))
        let pmagic = raw.loadLE(UInt16.self, at: 0)
        let info = raw.loadLE(UInt16.self, at: 2)
        let tli = raw.loadLE(UInt32.self, at: 4)
        let addr = raw.loadLE(UInt64.self, at: 8)
        let rem = raw.loadLE(UInt32.self, at: 16)
        if pmagic == 0 && info == 0 && addr == 0 {
            return .end("zeroed page at \(lsnText(p)): end of written WAL")
        }
        guard pmagic == magic else {
            return .end("page at \(lsnText(p)) has magic 0x\(String(pmagic, radix: 16, uppercase: true)), " +
                        "expected 0x\(String(magic, radix: 16, uppercase: true))")
        }
        guard info & ~WALPage.allFlags == 0 else {
            return .end("page at \(lsnText(p)) has invalid flags 0x\(String(info, radix: 16))")
        }
        let expected = segStart &+ UInt64(p)
        guard addr == expected else {
            return .end("page at \(lsnText(p)) carries address \(LSN(addr)): stale (recycled) data, end of WAL")
        }
        let long = p % segSize == 0
        if long {
            guard info & WALPage.longHeader != 0, raw.count >= WALPage.longHeaderSize,
                  raw.loadLE(UInt64.self, at: 24) == systemIdentifier,
                  Int(raw.loadLE(UInt32.self, at: 32)) == segSize,
                  Int(raw.loadLE(UInt32.self, at: 36)) == Self.pageSize else {
                return .end("first page of the segment at \(lsnText(p)) has an invalid long header")
            }
        }
        guard tli >= lastTimeline else {
            return .end("page at \(lsnText(p)) has timeline \(tli) after timeline \(lastTimeline)")
        }
        lastTimeline = tli
        return .ok(headerSize: long ? WALPage.longHeaderSize : WALPage.shortHeaderSize,
                   continuation: info & WALPage.firstIsContRecord != 0, remainingLength: Int(rem),
                   overwritten: info & WALPage.firstIsOverwriteContRecord != 0)
    }

    // MARK: Driver

    private mutating func stop(at off: Int, _ reason: String) {
        summary.endOfWAL = LSN(segStart &+ UInt64(off))
        summary.endOfWALReason = reason
    }

    @inline(__always) private static func align(_ v: Int) -> Int { (v + 7) & ~7 }

    mutating func run() -> SegmentSummary {
        defer {
            scratch?.deallocate()
            scratch = nil
            scratchCapacity = 0
        }
        var cur = WALPage.longHeaderSize
        if firstInfo & WALPage.firstIsContRecord != 0 {
            summary.startsInsideRecord = true
            // Skip the tail of the previous segment's last record; it may span several pages.
            var p = 0
            var header = WALPage.longHeaderSize
            var rem = Int(firstRemLen)
            while true {
                let avail = Self.pageSize - header
                if rem <= avail { cur = p + header + Self.align(rem); break }
                p += Self.pageSize
                if p >= segSize { summary.continuesIntoNext = true; return summary }
                switch checkPage(p) {
                case .ok(let h, let cont, let r, _):
                    header = h
                    if !cont { rem = 0 } else { rem = r }
                case .end(let why):
                    stop(at: p, why)
                    return summary
                }
            }
        } else {
            summary.startsInsideRecord = false
        }

        var prev: UInt64 = 0
        while true {
            cur = Self.align(cur)
            if cur >= segSize { break }
            if cur & Self.pageMask == 0 {
                switch checkPage(cur) {
                case .ok(let h, let cont, _, _):
                    if cont {
                        stop(at: cur, "page at \(lsnText(cur)) continues a record where a new record should start")
                        return summary
                    }
                    cur += h
                case .end(let why):
                    stop(at: cur, why)
                    return summary
                }
            }
            let lsn = segStart &+ UInt64(cur)
            let base = seg + cur
            let tot = Int(UInt32(littleEndian: base.loadUnaligned(as: UInt32.self)))
            if tot == 0 {
                stop(at: cur, "zero record length at \(lsnText(cur)): end of written WAL")
                break
            }
            if tot < Self.headerSize {
                stop(at: cur, "invalid record length \(tot) at \(lsnText(cur))")
                break
            }
            let pageRemain = Self.pageSize - (cur & Self.pageMask)
            if tot <= pageRemain {
                // Fast path: the whole record lies in this page.
                let rec = UnsafeRawBufferPointer(start: base, count: tot)
                if let why = headerProblem(rec, lsn: lsn, prev: prev) { stop(at: cur, why); break }
                let ok = verify ? Self.crcMatches(rec) : true
                account(rec, totalLength: tot, lsn: lsn, crcOK: ok, complete: true)
                prev = lsn
                cur += tot
                if ok && Self.isSwitch(rec) { summary.endsWithSwitch = true; break }
                continue
            }
            switch readCrossing(start: cur, totalLength: tot, lsn: lsn, prev: prev) {
            case .done(let end, let isSwitch):
                prev = lsn
                cur = end
                if end > segSize { summary.continuesIntoNext = true }
                if isSwitch { summary.endsWithSwitch = true; return summary }
            case .overwritten(let page):
                // As PostgreSQL's reader: the abandoned record is not WAL; read on from that page
                // (whose first record's xl_prev points at the record before the abandoned one).
                cur = page
            case .stopped, .incomplete:
                return summary
            }
        }
        return summary
    }

    // MARK: Records

    /// Why a record header is not acceptable, or nil when it is (PostgreSQL's header validation).
    @inline(__always)
    private func headerProblem(_ rec: UnsafeRawBufferPointer, lsn: UInt64, prev: UInt64) -> String? {
        let rmid = rec[17]
        if rmid > WALRecordFormat.rmMaxBuiltin && (pre15 || rmid < WALRecordFormat.rmMinCustom) {
            return "invalid resource manager id \(rmid) at \(LSN(lsn))"
        }
        let xlPrev = rec.loadLE(UInt64.self, at: 8)
        if prev != 0 {
            if xlPrev != prev {
                return "record at \(LSN(lsn)) has incorrect prev-link \(LSN(xlPrev)), expected \(LSN(prev))"
            }
        } else if xlPrev >= lsn {
            return "record at \(LSN(lsn)) has prev-link \(LSN(xlPrev)) pointing forward"
        }
        return nil
    }

    @inline(__always)
    private static func crcMatches(_ rec: UnsafeRawBufferPointer) -> Bool {
        var c = CRC32C()
        c.update(UnsafeRawBufferPointer(rebasing: rec[headerSize...]))
        c.update(UnsafeRawBufferPointer(rebasing: rec[..<WALRecordFormat.crcOffset]))
        return c.value == rec.loadLE(UInt32.self, at: WALRecordFormat.crcOffset)
    }

    @inline(__always)
    private static func isSwitch(_ rec: UnsafeRawBufferPointer) -> Bool {
        rec[17] == WALRecordFormat.rmXLOG && rec[16] & 0xF0 == WALRecordFormat.xlogSwitch
    }

    /// Records whose main data walctl reads.
    @inline(__always)
    private static func isInterpreted(_ rec: UnsafeRawBufferPointer) -> Bool {
        let rmid = rec[17], info = rec[16]
        if rmid == WALRecordFormat.rmTransaction {
            switch info & WALRecordFormat.xactOpMask {
            case WALRecordFormat.xactCommit, WALRecordFormat.xactAbort,
                 WALRecordFormat.xactCommitPrepared, WALRecordFormat.xactAbortPrepared: return true
            default: return false
            }
        }
        if rmid == WALRecordFormat.rmXLOG {
            switch info & 0xF0 {
            case WALRecordFormat.xlogCheckpointShutdown, WALRecordFormat.xlogCheckpointOnline,
                 WALRecordFormat.xlogRestorePoint: return true
            default: return false
            }
        }
        return false
    }

    private enum CrossResult {
        case done(end: Int, isSwitch: Bool)
        /// The record was abandoned: the page at this offset carries XLP_FIRST_IS_OVERWRITE_CONTRECORD.
        case overwritten(page: Int)
        case stopped
        case incomplete
    }

    private mutating func ensureScratch(_ needed: Int, keeping used: Int) {
        if needed <= scratchCapacity { return }
        let cap = max(needed, scratchCapacity * 2, 4 * Self.pageSize)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
        if let old = scratch {
            if used > 0 { fresh.copyMemory(from: old, byteCount: used) }
            old.deallocate()
        }
        scratch = fresh
        scratchCapacity = cap
    }

    /// Reads a record that does not fit in the rest of its page: streams its pieces through the CRC,
    /// copying only the header and, for interpreted records, the whole record.
    private mutating func readCrossing(start: Int, totalLength tot: Int, lsn: UInt64, prev: UInt64) -> CrossResult {
        var crc = CRC32C()
        var got = 0
        var collecting = true
        var headerChecked = false
        var off = start
        var len = Self.pageSize - (start & Self.pageMask)
        while true {
            // `off ..< off + len` is readable: the first piece lies in the segment, later ones were
            // bounds-checked below.
            guard let (ptr, _) = bytes(at: off) else { return .incomplete }
            if verify && got + len > Self.headerSize {
                let skip = max(0, Self.headerSize - got)
                crc.update(UnsafeRawBufferPointer(start: ptr + skip, count: len - skip))
            }
            if collecting {
                ensureScratch(got + len, keeping: got)
                (scratch! + got).copyMemory(from: ptr, byteCount: len)
            }
            got += len
            if !headerChecked && got >= Self.headerSize {
                headerChecked = true
                let h = UnsafeRawBufferPointer(start: scratch!, count: Self.headerSize)
                if let why = headerProblem(h, lsn: lsn, prev: prev) {
                    stop(at: start, why)
                    return .stopped
                }
                collecting = checkAllBodies || Self.isInterpreted(h)
                    || (tablespaceCreations != nil && h[17] == WALRecordFormat.rmTablespace)
            }
            if got == tot { break }
            let p = off + len  // the next page
            if p >= segSize && next == nil {
                finishIncomplete(lsn: lsn, totalLength: tot, got: got, headerKnown: headerChecked, collected: collecting)
                return .incomplete
            }
            switch checkPage(p) {
            case .ok(let h, let cont, let rem, let overwritten):
                if !cont && overwritten && p < segSize { return .overwritten(page: p) }
                guard cont, rem == tot - got else {
                    if p >= segSize {
                        finishIncomplete(lsn: lsn, totalLength: tot, got: got, headerKnown: headerChecked, collected: collecting)
                        return .incomplete
                    }
                    stop(at: start, "record at \(LSN(lsn)) is not continued on page \(lsnText(p)) " +
                         "(expected \(tot - got) remaining bytes, page says \(cont ? String(rem) : "no continuation"))")
                    return .stopped
                }
                let want = min(tot - got, Self.pageSize - h)
                guard let (_, readable) = bytes(at: p), readable >= h + want else {
                    finishIncomplete(lsn: lsn, totalLength: tot, got: got, headerKnown: headerChecked, collected: collecting)
                    return .incomplete
                }
                off = p + h
                len = want
            case .end(let why):
                if p >= segSize {
                    finishIncomplete(lsn: lsn, totalLength: tot, got: got, headerKnown: headerChecked, collected: collecting)
                    return .incomplete
                }
                stop(at: start, "record at \(LSN(lsn)) is cut short: \(why)")
                return .stopped
            }
        }
        let rec = UnsafeRawBufferPointer(start: scratch!, count: collecting ? tot : Self.headerSize)
        var ok = true
        if verify {
            crc.update(UnsafeRawBufferPointer(rebasing: rec[..<WALRecordFormat.crcOffset]))
            ok = crc.value == rec.loadLE(UInt32.self, at: WALRecordFormat.crcOffset)
        }
        account(rec, totalLength: tot, lsn: lsn, crcOK: ok, complete: true)
        return .done(end: off + len, isSwitch: ok && Self.isSwitch(rec))
    }

    /// Counts a record that continues past the end of the available bytes.
    private mutating func finishIncomplete(lsn: UInt64, totalLength: Int, got: Int, headerKnown: Bool, collected: Bool) {
        summary.continuesIntoNext = true
        summary.lastRecordIncomplete = true
        if headerKnown, let s = scratch {
            let rec = UnsafeRawBufferPointer(start: s, count: collected ? got : Self.headerSize)
            account(rec, totalLength: totalLength, lsn: lsn, crcOK: true, complete: false)
        } else {
            countRecord(lsn: lsn)
        }
    }

    @inline(__always)
    private mutating func countRecord(lsn: UInt64) {
        summary.records += 1
        if summary.firstLSN == nil { summary.firstLSN = LSN(lsn) }
        summary.lastLSN = LSN(lsn)
    }

    /// Counts one record and interprets it. `rec` holds the record's first bytes (at least the header;
    /// all `totalLength` bytes for interpreted records unless `complete` is false).
    @inline(__always)
    private mutating func account(_ rec: UnsafeRawBufferPointer, totalLength: Int, lsn: UInt64, crcOK: Bool, complete: Bool) {
        countRecord(lsn: lsn)
        guard crcOK else {
            summary.crcFailures += 1
            if summary.crcFailureLSNs.count < 100 { summary.crcFailureLSNs.append(LSN(lsn)) }
            return
        }
        if checkAllBodies && complete {
            bodiesChecked += 1
            if mainData(rec, totalLength: totalLength) == nil { undecodableBodies.append(LSN(lsn)) }
        }
        let rmid = rec[17]
        if rmid == WALRecordFormat.rmTablespace, complete, tablespaceCreations != nil, !tablespaceStopReached,
           rec[16] & 0xF0 == WALRecordFormat.tablespaceCreate, let m = mainData(rec, totalLength: totalLength),
           m.length >= 5, m.offset + m.length <= rec.count {
            let oid = rec.loadLE(UInt32.self, at: m.offset)
            var n = 0
            while 4 + n < m.length && rec[m.offset + 4 + n] != 0 { n += 1 }
            let location = String(decoding: UnsafeRawBufferPointer(rebasing: rec[(m.offset + 4) ..< (m.offset + 4 + n)]), as: UTF8.self)
            tablespaceCreations?.append(TablespaceCreation(lsn: LSN(lsn), oid: oid, location: location))
        }
        guard rmid <= WALRecordFormat.rmTransaction else { return }
        guard Self.isInterpreted(rec) else { return }
        interpret(rec, totalLength: totalLength, lsn: lsn)
    }

    private mutating func interpret(_ rec: UnsafeRawBufferPointer, totalLength tot: Int, lsn: UInt64) {
        let rmid = rec[17], info = rec[16]
        let main = mainData(rec, totalLength: tot)
        /// The `n` bytes at `at` in the main data, when present in `rec`.
        func mainBytes(_ at: Int, _ n: Int) -> Int? {
            guard let m = main, at + n <= m.length, m.offset + at + n <= rec.count else { return nil }
            return m.offset + at
        }
        if rmid == WALRecordFormat.rmTransaction {
            let op = info & WALRecordFormat.xactOpMask
            let commit = op == WALRecordFormat.xactCommit || op == WALRecordFormat.xactCommitPrepared
            if commit { summary.commits += 1 } else { summary.aborts += 1 }
            guard let o = mainBytes(0, 8) else { return }
            let t = PGTimestamp(microseconds: Int64(bitPattern: rec.loadLE(UInt64.self, at: o)))
            if let stop = tablespaceStopAfter, stop < t { tablespaceStopReached = true }
            if commit {
                if summary.firstCommitTime == nil { summary.firstCommitTime = t }
                summary.lastCommitTime = t
            }
            if summary.firstXactTime == nil { summary.firstXactTime = t }
            summary.lastXactTime = t
            if summary.earliestXactTime.map({ t < $0 }) ?? true { summary.earliestXactTime = t }
            if summary.latestXactTime.map({ $0 < t }) ?? true { summary.latestXactTime = t }
            return
        }
        switch info & 0xF0 {
        case WALRecordFormat.xlogCheckpointShutdown, WALRecordFormat.xlogCheckpointOnline:
            guard let o = mainBytes(WALRecordFormat.checkpointTimeOffset, 8) else { return }
            let secs = Int64(bitPattern: rec.loadLE(UInt64.self, at: o))
            guard secs > Int64.min / 2_000_000, secs < Int64.max / 2_000_000 else { return }
            let redo = mainBytes(0, 8).map { rec.loadLE(UInt64.self, at: $0) }
            let next = mainBytes(WALRecordFormat.checkpointNextXidOffset, 8).map { rec.loadLE(UInt64.self, at: $0) }
            let oldest = mainBytes(WALRecordFormat.checkpointOldestActiveXidOffset, 4).map { rec.loadLE(UInt32.self, at: $0) }
            summary.checkpoints.append(CheckpointInfo(
                lsn: LSN(lsn), time: PGTimestamp(unixSeconds: secs),
                shutdown: info & 0xF0 == WALRecordFormat.xlogCheckpointShutdown,
                redo: redo.flatMap { $0 == 0 ? nil : LSN($0) }, nextXid: next == 0 ? nil : next, oldestActiveXid: oldest == 0 ? nil : oldest))
        case WALRecordFormat.xlogRestorePoint:
            guard let o = mainBytes(0, 8), let m = main else { return }
            let t = PGTimestamp(microseconds: Int64(bitPattern: rec.loadLE(UInt64.self, at: o)))
            let nameStart = o + 8
            let nameMax = min(WALRecordFormat.restorePointNameLength, m.length - 8, rec.count - nameStart)
            guard nameMax >= 0 else { return }
            var n = 0
            while n < nameMax && rec[nameStart + n] != 0 { n += 1 }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: rec[nameStart ..< nameStart + n]), as: UTF8.self)
            summary.restorePoints.append(RestorePoint(name: name, time: t, lsn: LSN(lsn)))
        default:
            return
        }
    }

    /// Walks the block headers after the record header to find the main data: its offset
    /// (`xl_tot_len - main_len`) and length. Nil when the headers are malformed or not present in
    /// `rec`.
    private func mainData(_ rec: UnsafeRawBufferPointer, totalLength tot: Int) -> (offset: Int, length: Int)? {
        let avail = min(rec.count, tot)
        var pos = Self.headerSize
        var dataTotal = 0
        var mainLength = 0
        scan: while tot - pos > dataTotal {
            guard pos < avail else { return nil }
            let id = rec[pos]
            pos += 1
            switch id {
            case WALRecordFormat.blockIDDataShort:
                guard pos + 1 <= avail else { return nil }
                mainLength = Int(rec[pos])
                pos += 1
                dataTotal += mainLength
                break scan
            case WALRecordFormat.blockIDDataLong:
                guard pos + 4 <= avail else { return nil }
                mainLength = Int(rec.loadLE(UInt32.self, at: pos))
                pos += 4
                dataTotal += mainLength
                break scan
            case WALRecordFormat.blockIDOrigin:
                pos += 2
            case WALRecordFormat.blockIDTopLevelXID:
                pos += 4
            case 0 ... WALRecordFormat.maxBlockID:
                guard pos + 3 <= avail else { return nil }
                let flags = rec[pos]
                dataTotal += Int(rec.loadLE(UInt16.self, at: pos + 1))
                pos += 3
                if flags & WALRecordFormat.blockHasImage != 0 {
                    guard pos + 5 <= avail else { return nil }
                    dataTotal += Int(rec.loadLE(UInt16.self, at: pos))
                    let bimg = rec[pos + 4]
                    pos += 5
                    let compressed = pre15 ? bimg & WALRecordFormat.imageCompressedPre15 != 0
                                           : bimg & WALRecordFormat.imageCompressedMask15 != 0
                    if bimg & WALRecordFormat.imageHasHole != 0 && compressed { pos += 2 }
                }
                if flags & WALRecordFormat.blockSameRel == 0 { pos += 12 }
                pos += 4
            default:
                return nil
            }
        }
        guard pos + dataTotal == tot, mainLength <= tot - Self.headerSize else { return nil }
        return (tot - mainLength, mainLength)
    }
}
