/// Record-level constants of PostgreSQL 12-18 WAL, as far as walctl interprets records.
///
/// Values are from the PostgreSQL headers (`xlogrecord.h`, `pg_control.h`, `xact.h`, `rmgrlist.h`)
/// and were checked against real WAL of PostgreSQL 15, 16 and 18 by the pg_waldump comparison tests.
public enum WALRecordFormat {
    /// `SizeOfXLogRecord`: the fixed record header.
    public static let headerSize = 24
    /// Offset of `xl_crc` inside the header; the CRC covers the body, then header bytes `0..<20`.
    public static let crcOffset = 20
    /// `MAXALIGN` on every supported platform: records start at multiples of 8.
    public static let alignment = 8

    /// Resource manager ids (`xl_rmid`).
    public static let rmXLOG: UInt8 = 0
    public static let rmTransaction: UInt8 = 1
    /// `RM_TBLSPC_ID`: CREATE / DROP TABLESPACE.
    public static let rmTablespace: UInt8 = 5
    /// `XLOG_TBLSPC_CREATE` (`xl_info & 0xF0`, rmid 5); its main data is `xl_tblspc_create_rec`:
    /// the tablespace's OID (4 bytes), then its location, NUL-terminated.
    public static let tablespaceCreate: UInt8 = 0x00
    /// The last built-in resource manager (`RM_LOGICALMSG_ID`, the same in 12-18).
    public static let rmMaxBuiltin: UInt8 = 21
    /// Custom resource managers (PostgreSQL 15+) use ids 128-255.
    public static let rmMinCustom: UInt8 = 128

    /// XLOG record types (`xl_info & 0xF0`, rmid 0).
    public static let xlogCheckpointShutdown: UInt8 = 0x00
    public static let xlogCheckpointOnline: UInt8 = 0x10
    public static let xlogSwitch: UInt8 = 0x40
    public static let xlogRestorePoint: UInt8 = 0x70

    /// Transaction record types (`xl_info & XLOG_XACT_OPMASK`, rmid 1).
    public static let xactOpMask: UInt8 = 0x70
    public static let xactCommit: UInt8 = 0x00
    public static let xactPrepare: UInt8 = 0x10
    public static let xactAbort: UInt8 = 0x20
    public static let xactCommitPrepared: UInt8 = 0x30
    public static let xactAbortPrepared: UInt8 = 0x40

    /// Block-header ids in the record body.
    static let maxBlockID: UInt8 = 32
    static let blockIDTopLevelXID: UInt8 = 252
    static let blockIDOrigin: UInt8 = 253
    static let blockIDDataLong: UInt8 = 254
    static let blockIDDataShort: UInt8 = 255
    /// `fork_flags` bits of `XLogRecordBlockHeader`.
    static let blockHasImage: UInt8 = 0x10
    static let blockSameRel: UInt8 = 0x80
    /// `bimg_info` bits. PostgreSQL 15 changed them: the magic selects which set applies.
    static let imageHasHole: UInt8 = 0x01
    static let imageCompressedPre15: UInt8 = 0x02
    static let imageCompressedMask15: UInt8 = 0x04 | 0x08 | 0x10  // PGLZ | LZ4 | ZSTD
    /// Offset of `CheckPoint.time` (int64, Unix seconds) in a checkpoint record's main data (12-18).
    static let checkpointTimeOffset = 64
    /// Offsets in `CheckPoint` (the same in PostgreSQL 15 to 18; 17 added `wal_level` in the padding
    /// before `nextXid`) of `nextXid` (a FullTransactionId) and `oldestActiveXid`; `redo` is at 0.
    static let checkpointNextXidOffset = 24
    static let checkpointOldestActiveXidOffset = 80
    /// Length of `xl_restore_point.rp_name`.
    static let restorePointNameLength = 64
}

/// The fixed 24-byte header of a WAL record (`XLogRecord`).
public struct WALRecordHeader: Equatable, Sendable {
    /// `xl_tot_len`: the whole record, header included.
    public var totalLength: UInt32
    /// `xl_xid`: the transaction id (0 for many records, COMMIT_PREPARED included).
    public var xid: UInt32
    /// `xl_prev`: start of the previous record.
    public var previous: LSN
    /// `xl_info`: the high four bits are the resource manager's record type.
    public var info: UInt8
    /// `xl_rmid`: the resource manager.
    public var resourceManager: UInt8
    /// `xl_crc`: CRC-32C of the body then of header bytes `0..<20`.
    public var crc: UInt32

    /// Decodes the first 24 bytes of `bytes`.
    public init(bytes: UnsafeRawBufferPointer) throws(WALFormatError) {
        guard bytes.count >= WALRecordFormat.headerSize else {
            throw .truncated(needed: WALRecordFormat.headerSize, have: bytes.count)
        }
        totalLength = bytes.loadLE(UInt32.self, at: 0)
        xid = bytes.loadLE(UInt32.self, at: 4)
        previous = LSN(bytes.loadLE(UInt64.self, at: 8))
        info = bytes[16]
        resourceManager = bytes[17]
        crc = bytes.loadLE(UInt32.self, at: 20)
    }
}

/// A WAL page header (`XLogPageHeaderData`), short or long. Every 8 KiB page starts with one; the
/// first page of a segment carries the long form (see ``LongPageHeader`` for its extra fields).
public struct WALPageHeader: Equatable, Sendable {
    public var magic: UInt16
    public var info: UInt16
    public var timeline: TimeLineID
    public var pageAddress: LSN
    /// `xlp_rem_len`: bytes of a record continued from the previous page (with `isContinuation`).
    public var remainingLength: UInt32

    /// Decodes the first 24 bytes of `bytes`.
    public init(bytes: UnsafeRawBufferPointer) throws(WALFormatError) {
        guard bytes.count >= WALPage.shortHeaderSize else {
            throw .truncated(needed: WALPage.shortHeaderSize, have: bytes.count)
        }
        magic = bytes.loadLE(UInt16.self, at: 0)
        info = bytes.loadLE(UInt16.self, at: 2)
        timeline = bytes.loadLE(UInt32.self, at: 4)
        pageAddress = LSN(bytes.loadLE(UInt64.self, at: 8))
        remainingLength = bytes.loadLE(UInt32.self, at: 16)
    }

    /// `XLP_LONG_HEADER` is set.
    public var isLong: Bool { info & WALPage.longHeader != 0 }
    /// `XLP_FIRST_IS_CONTRECORD`: the page starts with the rest of a record from the previous page.
    public var isContinuation: Bool { info & WALPage.firstIsContRecord != 0 }
    /// Bytes taken by this header: 40 for the long form, 24 for the short one.
    public var size: Int { isLong ? WALPage.longHeaderSize : WALPage.shortHeaderSize }
    /// The PostgreSQL major version of the magic, or nil when unknown.
    public var majorVersion: Int? { WALMagic.majorVersion(magic) }
}
