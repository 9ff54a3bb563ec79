import Foundation
import LocalFS

/// The header of a PostgreSQL 17+ `INCREMENTAL.<relfile>` member of a native incremental backup
/// (src/backend/backup/basebackup_incremental.c writes it, src/bin/pg_combinebackup/reconstruct.c
/// reads it). Layout, each integer a native-endian (little-endian on every platform walctl runs on)
/// `uint32`:
///
///     magic 0xd3ae1f0d | block count n | truncation_block_length | n block numbers
///     | zero padding to a multiple of BLCKSZ (only when n > 0) | n blocks of BLCKSZ bytes
///
/// Block numbers are relative to the segment file. `truncation_block_length` is the length (in
/// blocks) the file had at least at the backup's start as far as the WAL summaries tell: blocks below
/// it that the file does not carry come from older backups of the chain; blocks at or above it exist
/// only if this file carries them.
public struct IncrementalHeader: Equatable, Sendable {
    public static let magic: UInt32 = 0xd3ae_1f0d
    public var blockNumbers: [UInt32]
    public var truncationBlockLength: UInt32
    /// BLCKSZ of the cluster (8192 unless PostgreSQL was built with another).
    public var blockSize: Int

    public init(blockNumbers: [UInt32], truncationBlockLength: UInt32, blockSize: Int = 8192) {
        self.blockNumbers = blockNumbers; self.truncationBlockLength = truncationBlockLength; self.blockSize = blockSize
    }

    /// Bytes before the first block: 12 + 4n, rounded up to a multiple of BLCKSZ when n > 0.
    public static func headerLength(blocks n: Int, blockSize: Int) -> Int {
        let raw = 12 + 4 * n
        guard n > 0, raw % blockSize != 0 else { return raw }
        return raw + blockSize - raw % blockSize
    }
    public var headerLength: Int { Self.headerLength(blocks: blockNumbers.count, blockSize: blockSize) }
    /// The size of the whole `INCREMENTAL.` file.
    public var fileSize: Int64 { Int64(headerLength) + Int64(blockNumbers.count) * Int64(blockSize) }
    /// The reconstructed file's length in blocks (reconstruct.c's find_reconstructed_block_length):
    /// `truncation_block_length`, extended to cover every block the file carries.
    public var reconstructedBlockLength: UInt32 {
        blockNumbers.reduce(truncationBlockLength) { $1 >= $0 ? $1 + 1 : $0 }
    }
}

/// A damaged or unexpected `INCREMENTAL.` file.
public struct IncrementalFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public var description: String { "\(path): not a valid PostgreSQL incremental file: \(message)" }
}

/// Parses an `INCREMENTAL.` file as it streams (out of a tar member), holding only its header: the
/// block data is handed on piecewise with the block number it belongs to.
///
/// BLCKSZ is not written in the file: when the member's size is known, the parser takes the block
/// size (1, 2, 4, 8, 16 or 32 kB, 8 kB first) for which the header's block count gives exactly that
/// size; otherwise `blockSize`.
public final class IncrementalFileParser {
    public let path: String
    private let expectedSize: Int64?
    private var blockSize: Int
    private var fixed = [UInt8]()
    private var numbers = [UInt8]()
    private var count = 0
    private var truncation: UInt32 = 0
    private(set) public var header: IncrementalHeader?
    /// Bytes consumed so far.
    private(set) public var offset: Int64 = 0
    /// Largest block number accepted times BLCKSZ: 1 TiB (PostgreSQL's segment size is 1 GiB unless
    /// built otherwise); beyond, the file is treated as damaged rather than creating a huge sparse file.
    public static let maxFileBytes: Int64 = 1 << 40

    private let onHeader: (IncrementalHeader) throws -> Void
    /// (index in the file, block number, offset inside the block, bytes)
    private let onBlock: (Int, UInt32, Int, UnsafeRawBufferPointer) throws -> Void

    public init(path: String, expectedSize: Int64?, blockSize: Int = 8192,
                onHeader: @escaping (IncrementalHeader) throws -> Void,
                onBlock: @escaping (Int, UInt32, Int, UnsafeRawBufferPointer) throws -> Void) {
        self.path = path; self.expectedSize = expectedSize; self.blockSize = blockSize
        self.onHeader = onHeader; self.onBlock = onBlock
    }

    private func fail(_ m: String) -> IncrementalFileError { IncrementalFileError(path: path, message: m) }

    private static func u32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        var p = 0
        let n = bytes.count
        while p < n {
            if fixed.count < 12 {
                let take = min(12 - fixed.count, n - p)
                fixed.append(contentsOf: bytes[p..<(p + take)])
                p += take; offset += Int64(take)
                if fixed.count == 12 { try parsedFixed() }
                continue
            }
            if header == nil {
                let take = min(4 * count - numbers.count, n - p)
                numbers.append(contentsOf: bytes[p..<(p + take)])
                p += take; offset += Int64(take)
                if numbers.count == 4 * count { try parsedNumbers() }
                continue
            }
            guard let h = header else { throw fail("internal state") }
            let hl = Int64(h.headerLength)
            if offset < hl {
                // Padding: zeros up to the first block.
                let take = Int(min(hl - offset, Int64(n - p)))
                for i in p..<(p + take) where bytes[i] != 0 { throw fail("non-zero padding at byte \(offset + Int64(i - p))") }
                p += take; offset += Int64(take)
                continue
            }
            let rel = offset - hl
            let index = Int(rel / Int64(h.blockSize))
            guard index < count else { throw fail("more than its \(count) block(s) of data") }
            let within = Int(rel % Int64(h.blockSize))
            let take = min(h.blockSize - within, n - p)
            try onBlock(index, h.blockNumbers[index], within, UnsafeRawBufferPointer(rebasing: bytes[p..<(p + take)]))
            p += take; offset += Int64(take)
        }
    }

    private func parsedFixed() throws {
        let magic = Self.u32(fixed, 0)
        guard magic == IncrementalHeader.magic else {
            throw fail("bad magic number 0x\(String(magic, radix: 16)) (expected 0x\(String(IncrementalHeader.magic, radix: 16)))")
        }
        let c = Self.u32(fixed, 4)
        truncation = Self.u32(fixed, 8)
        if let s = expectedSize {
            if c == 0 {
                guard s == 12 else { throw fail("no blocks but \(s) bytes (12 expected)") }
            } else {
                let sizes = [8192, 1024, 2048, 4096, 16384, 32768]
                guard let bs = sizes.first(where: { bs in
                    Int64(IncrementalHeader.headerLength(blocks: Int(c), blockSize: bs)) + Int64(c) * Int64(bs) == s
                }) else { throw fail("\(c) block(s) do not fit its \(s) bytes for any block size") }
                blockSize = bs
            }
        }
        guard Int64(truncation) * Int64(blockSize) <= Self.maxFileBytes, Int64(c) * Int64(blockSize) <= Self.maxFileBytes else {
            throw fail("block count \(c) or truncation length \(truncation) beyond any segment size")
        }
        count = Int(c)
        numbers.reserveCapacity(4 * count)
        if count == 0 { try parsedNumbers() }
    }

    private func parsedNumbers() throws {
        var list = [UInt32]()
        list.reserveCapacity(count)
        var seen = Set<UInt32>()
        for i in 0..<count {
            let b = Self.u32(numbers, 4 * i)
            guard Int64(b) * Int64(blockSize) < Self.maxFileBytes else { throw fail("block number \(b) beyond any segment size") }
            guard seen.insert(b).inserted else { throw fail("block \(b) listed twice") }
            list.append(b)
        }
        numbers = []
        let h = IncrementalHeader(blockNumbers: list, truncationBlockLength: truncation, blockSize: blockSize)
        header = h
        try onHeader(h)
    }

    /// The file ended: throws unless it was complete.
    public func finish() throws {
        guard let h = header else { throw fail("truncated header (\(offset) bytes)") }
        guard offset == h.fileSize else { throw fail("\(offset) bytes, \(h.fileSize) expected from its header") }
    }
}

/// Combines the files of a PostgreSQL 17+ native incremental chain into the target in ONE pass over
/// the chain's members, newest member first (docs/backup.md, "Native incremental backups"), giving
/// exactly what `pg_combinebackup` gives (src/bin/pg_combinebackup/reconstruct.c):
///
/// - the newest member's `INCREMENTAL.x` fixes the file's length, `reconstructedBlockLength`, and
///   its blocks are written in place at `blockno * BLCKSZ`;
/// - each older member's `INCREMENTAL.x` then gives the blocks still missing below the NEWEST file's
///   `truncation_block_length` (a block a newer member wrote is never overwritten);
/// - the newest full version of `x` (in the first member that stores it whole) gives the rest of
///   the blocks below that length that it has, and ends the file's reconstruction;
/// - every block nothing gave stays a hole: zeros, as pg_combinebackup zero-fills it.
///
/// Memory: one bit per block of each file being combined (16 kB for a 1 GiB segment).
public final class NativeCombine {
    struct FileState {
        var limit: UInt32
        var length: UInt32
        var blockSize: Int
        var written: [UInt64]
        var complete = false
        /// `--delta`: the file was there already and is rewritten in place (`put` compares first;
        /// a block no member gives is made zero at the end instead of being a hole).
        var inPlace = false
        func has(_ b: UInt32) -> Bool { Int(b / 64) < written.count && written[Int(b / 64)] & (1 << UInt64(b % 64)) != 0 }
        mutating func mark(_ b: UInt32) {
            let i = Int(b / 64)
            if i >= written.count { written.append(contentsOf: repeatElement(0, count: i + 1 - written.count)) }
            written[i] |= 1 << UInt64(b % 64)
        }
    }
    private var files: [String: FileState] = [:]
    /// Blocks written, for the report.
    public private(set) var blocksWritten: Int64 = 0
    /// `--delta`: bytes of files rewritten in place that were already right, and that were written.
    public private(set) var keptBytes: Int64 = 0
    public private(set) var rewrittenBytes: Int64 = 0
    private var scratch = [UInt8]()
    /// BLCKSZ. An `INCREMENTAL.` file without blocks does not show it: the cluster's must be this
    /// (PostgreSQL's default, 8192); a file with blocks of another size is refused.
    public let blockSize: Int

    public init(blockSize: Int = 8192) { self.blockSize = blockSize }

    /// True when `path` (its name without `INCREMENTAL.`) is being combined and still needs an older member.
    public func needsOlder(_ path: String) -> Bool { files[path].map { !$0.complete } ?? false }
    /// Files whose reconstruction still waits for an older member.
    public var incomplete: [String] { files.filter { !$0.value.complete }.map(\.key).sorted() }

    /// The member stores `INCREMENTAL.<path>`, streamed into `fd` (the reconstructed file, created by
    /// the newest member's and reopened for the older ones'). Feed the member's bytes to the result.
    /// `inPlace` (the newest member's call only): `fd` is the file already in the target (`--delta`).
    public func incremental(path: String, fd: Int32, filePath: String, memberSize: Int64, newest: Bool, inPlace: Bool = false) -> IncrementalFileParser {
        var limit: UInt32 = 0
        var writing = false  // the current block is taken from this member
        return IncrementalFileParser(path: filePath, expectedSize: memberSize, blockSize: blockSize, onHeader: { [unowned self] h in
            guard h.blockSize == blockSize else {
                throw IncrementalFileError(path: filePath, message: "blocks of \(h.blockSize) bytes: walctl combines clusters with \(blockSize)-byte blocks only")
            }
            if newest {
                let length = h.reconstructedBlockLength
                files[path] = FileState(limit: h.truncationBlockLength, length: length, blockSize: h.blockSize,
                                        written: [UInt64](repeating: 0, count: Int(length / 64) + 1), inPlace: inPlace)
                // The file's final length; blocks nothing writes read as zeros (in place: made zero
                // when the file is complete).
                guard ftruncate(fd, off_t(Int64(length) * Int64(h.blockSize))) == 0 else {
                    throw WalctlError.file(operation: "ftruncate", path: filePath, errno: errno)
                }
            } else {
                guard let s = files[path], !s.complete else {
                    throw WalctlError.chainDamaged("\(filePath): an older INCREMENTAL file of a file no newer member combines")
                }
            }
            limit = files[path]!.limit
        }, onBlock: { [unowned self] _, block, within, bytes in
            if within == 0 {
                // Newest: every block it carries. Older: only missing blocks below the newest truncation length.
                writing = newest || (block < limit && !files[path]!.has(block))
                if writing { files[path]!.mark(block); blocksWritten += 1 }
            }
            guard writing else { return }
            try put(fd, bytes, at: Int64(block) * Int64(files[path]!.blockSize) + Int64(within), path: filePath, inPlace: files[path]!.inPlace)
        })
    }

    /// An older member stores `path` whole (it is the newest full version): its blocks below the newest
    /// truncation length that no newer member gave are written into `fd`; the file is then complete.
    public func full(path: String, fd: Int32, filePath: String) -> FullFileFeeder {
        FullFileFeeder(owner: self, path: path, fd: fd, filePath: filePath)
    }

    public final class FullFileFeeder {
        unowned let owner: NativeCombine
        let path: String, fd: Int32, filePath: String
        var offset: Int64 = 0
        var writing = false
        init(owner: NativeCombine, path: String, fd: Int32, filePath: String) {
            self.owner = owner; self.path = path; self.fd = fd; self.filePath = filePath
        }
        /// Consecutive blocks to write go out in one `pwrite` (a 1 GiB segment whose blocks all come
        /// from here is 128 Ki blocks: one call each cost a third of a chain restore's time).
        public func feed(_ bytes: UnsafeRawBufferPointer) throws {
            guard let s = owner.files[path] else { return }
            let bs = Int64(s.blockSize)
            var p = 0
            var run: (start: Int, offset: Int64)?
            while p < bytes.count {
                let block = offset / bs
                let within = Int(offset % bs)
                let take = min(Int(bs) - within, bytes.count - p)
                if within == 0 {
                    // A trailing partial block (never in a relation file) is not taken, as pg_combinebackup
                    // takes only st_size / BLCKSZ whole blocks: it is decided at finish.
                    writing = block < Int64(s.limit) && !owner.files[path]!.has(UInt32(block))
                    if writing { owner.files[path]!.mark(UInt32(block)); owner.blocksWritten += 1 }
                }
                if writing {
                    if run == nil { run = (p, offset) }
                } else if let r = run {
                    try owner.put(fd, UnsafeRawBufferPointer(rebasing: bytes[r.start..<p]), at: r.offset, path: filePath, inPlace: s.inPlace)
                    run = nil
                }
                p += take; offset += Int64(take)
            }
            if let r = run {
                try owner.put(fd, UnsafeRawBufferPointer(rebasing: bytes[r.start..<p]), at: r.offset, path: filePath, inPlace: s.inPlace)
            }
        }
        /// The full version ended: the file is complete.
        public func finish() throws {
            guard let s = owner.files[path] else { return }
            let bs = Int64(s.blockSize)
            if offset % bs != 0 && writing {
                // The partial last block was written in part: pg_combinebackup leaves it zero.
                let start = offset - offset % bs
                let zeros = [UInt8](repeating: 0, count: Int(offset - start))
                try zeros.withUnsafeBytes { try owner.put(fd, $0, at: start, path: filePath, inPlace: s.inPlace) }
            }
            if s.inPlace {
                // A fresh file's blocks that no member gave are holes (zeros); a rewritten one's
                // still hold the old bytes: made zero here.
                let zeros = [UInt8](repeating: 0, count: s.blockSize)
                let state = owner.files[path]!
                for b in 0..<state.length where !state.has(b) {
                    try zeros.withUnsafeBytes { try owner.put(fd, $0, at: Int64(b) * bs, path: filePath, inPlace: true) }
                }
            }
            owner.files[path]!.complete = true
        }
    }

    /// Writes `bytes` at `offset`; `inPlace` (`--delta`): only the 8 KiB blocks whose bytes the file
    /// does not already have there (one `pread` of the range first, differing blocks written in runs).
    func put(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String, inPlace: Bool) throws {
        guard inPlace, bytes.count > 0 else { return try Self.write(fd, bytes, at: offset, path: path) }
        if scratch.count < bytes.count { scratch = [UInt8](repeating: 0, count: max(bytes.count, 1 << 20)) }
        var have = 0
        try scratch.withUnsafeMutableBytes { sb in
            while have < bytes.count {
                let r = pread(fd, sb.baseAddress! + have, bytes.count - have, off_t(offset + Int64(have)))
                if r < 0 {
                    if errno == EINTR { continue }
                    throw WalctlError.file(operation: "read", path: path, errno: errno)
                }
                if r == 0 { break }   // past the end: what follows is written
                have += r
            }
        }
        let bs = Int64(blockSize)
        var p = 0
        var run: Int?   // start of a run of differing slices
        while p < bytes.count {
            // Slices end on block boundaries of the file.
            let len = min(bytes.count - p, Int(bs - (offset + Int64(p)) % bs))
            let same = p + len <= have && scratch.withUnsafeBytes { memcmp($0.baseAddress! + p, bytes.baseAddress! + p, len) == 0 }
            if same {
                keptBytes += Int64(len)
                if let r = run { try Self.write(fd, UnsafeRawBufferPointer(rebasing: bytes[r..<p]), at: offset + Int64(r), path: path); run = nil }
            } else {
                rewrittenBytes += Int64(len)
                if run == nil { run = p }
            }
            p += len
        }
        if let r = run { try Self.write(fd, UnsafeRawBufferPointer(rebasing: bytes[r..<p]), at: offset + Int64(r), path: path) }
    }

    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String) throws {
        var done = 0
        while done < bytes.count {
            let r = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + Int64(done)))
            if r < 0 {
                if errno == EINTR { continue }
                throw WalctlError.file(operation: "write", path: path, errno: errno)
            }
            done += r
        }
    }
}

