/// Errors found while reading WAL bytes, history files and labels. Each message names what was
/// expected so an operator can act on it.
public enum WALFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(needed: Int, have: Int)
    case unknownMagic(UInt16)
    case badPageFlags(UInt16)
    case segmentSizeMismatch(header: UInt64, expected: UInt64)
    case invalidSegmentSize(UInt64)
    case blockSizeMismatch(UInt32)
    case pageAddressMismatch(header: LSN, expected: LSN)
    case timelineMismatch(header: TimeLineID, fileName: TimeLineID)
    case systemIdentifierMismatch(segment: UInt64, repository: UInt64)
    case fileSizeMismatch(actual: Int, expected: UInt64)
    case malformedHistory(line: Int, text: String)
    case malformedLabel(String)
    /// The path is not a regular file (`kind`: a FIFO, a character device, a directory, ...).
    case notARegularFile(kind: String)
    /// A timeline history file that PostgreSQL would not have written (empty, timeline 1, parents out
    /// of order, a parent not archived, ...).
    case invalidHistory(String)
    /// A backup history file whose contents disagree with its name.
    case backupNameMismatch(String)

    public var description: String {
        switch self {
        case .truncated(let n, let h): return "WAL data is truncated: needed \(n) bytes, have \(h)"
        case .unknownMagic(let m):
            return "unknown WAL page magic 0x\(String(m, radix: 16, uppercase: true)) (walctl reads PostgreSQL 12-18 WAL)"
        case .badPageFlags(let f): return "invalid WAL page header flags 0x\(String(f, radix: 16)) on the first page"
        case .segmentSizeMismatch(let h, let e): return "segment size in the page header is \(h) bytes, expected \(e)"
        case .invalidSegmentSize(let s): return "\(s) is not a valid WAL segment size (a power of two from 1 MiB to 1 GiB)"
        case .blockSizeMismatch(let b): return "WAL block size is \(b), walctl supports 8192"
        case .pageAddressMismatch(let h, let e):
            return "page address \(h) does not match the file name (expected \(e)): the file is not the segment it is named as"
        case .timelineMismatch(let h, let f): return "page header timeline \(h) is newer than the file name's timeline \(f)"
        case .systemIdentifierMismatch(let s, let r):
            return "segment belongs to database system \(s), but the repository is bound to \(r): refusing to mix clusters"
        case .fileSizeMismatch(let a, let e): return "file is \(a) bytes, a WAL segment here is \(e) bytes"
        case .malformedHistory(let l, let t): return "timeline history line \(l) is malformed: \"\(t)\""
        case .malformedLabel(let s): return "malformed backup label: \(s)"
        case .notARegularFile(let k): return "it is \(k), not a regular file: walctl reads only regular files (never opens it)"
        case .invalidHistory(let s): return "invalid timeline history file: \(s)"
        case .backupNameMismatch(let s): return "backup history file does not match its name: \(s)"
        }
    }
}
