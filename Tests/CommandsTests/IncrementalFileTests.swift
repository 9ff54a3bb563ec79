@testable import Commands
import Foundation
import XCTest

/// PostgreSQL 17+ `INCREMENTAL.` files: the streaming parser and the newest-first combine, against a
/// direct transcription of pg_combinebackup's reconstruct.c rules. Real PG18 output is checked by
/// Tests/integration/test_incremental_native.sh (walctl's combine equals pg_combinebackup's, file by file).
final class IncrementalFileTests: XCTestCase {

    /// An `INCREMENTAL.` file as basebackup_incremental.c writes it.
    static func incrementalFile(blocks: [(UInt32, [UInt8])], truncation: UInt32, blockSize: Int) -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        var out = u32(IncrementalHeader.magic) + u32(UInt32(blocks.count)) + u32(truncation)
        for (b, _) in blocks { out += u32(b) }
        if !blocks.isEmpty { while out.count % blockSize != 0 { out.append(0) } }
        for (_, data) in blocks { precondition(data.count == blockSize); out += data }
        return out
    }

    static func block(_ tag: UInt8, _ bs: Int) -> [UInt8] { (0..<bs).map { UInt8(truncatingIfNeeded: Int(tag) &* 31 &+ $0) } }

    func feed(_ parser: IncrementalFileParser, _ bytes: [UInt8], chunk: Int) throws {
        var i = 0
        while i < bytes.count {
            let n = min(chunk, bytes.count - i)
            try bytes[i..<(i + n)].withUnsafeBytes { try parser.feed($0) }
            i += n
        }
        try parser.finish()
    }

    func testHeaderWithoutBlocksIsTwelveBytes() throws {
        let f = Self.incrementalFile(blocks: [], truncation: 7, blockSize: 8192)
        XCTAssertEqual(f.count, 12)
        var got: IncrementalHeader?
        let p = IncrementalFileParser(path: "x", expectedSize: 12, onHeader: { got = $0 }, onBlock: { _, _, _, _ in XCTFail("no blocks") })
        try feed(p, f, chunk: 5)
        XCTAssertEqual(got?.truncationBlockLength, 7)
        XCTAssertEqual(got?.blockNumbers, [])
        XCTAssertEqual(got?.reconstructedBlockLength, 7)
    }

    func testBlocksArriveWithTheirNumbersWhateverTheChunking() throws {
        for bs in [8192, 1024] {
            let blocks: [(UInt32, [UInt8])] = [(3, Self.block(1, bs)), (0, Self.block(2, bs)), (9, Self.block(3, bs))]
            let f = Self.incrementalFile(blocks: blocks, truncation: 5, blockSize: bs)
            XCTAssertEqual(f.count, bs + 3 * bs, "header padded to one block")
            for chunk in [1, 7, 511, 4096, 100_000] {
                var data: [UInt32: [UInt8]] = [:]
                var header: IncrementalHeader?
                let p = IncrementalFileParser(path: "x", expectedSize: Int64(f.count), onHeader: { header = $0 },
                                              onBlock: { _, b, within, bytes in
                    XCTAssertEqual(data[b, default: []].count, within)
                    data[b, default: []] += Array(bytes)
                })
                try feed(p, f, chunk: chunk)
                XCTAssertEqual(header?.blockSize, bs)
                XCTAssertEqual(header?.reconstructedBlockLength, 10)
                for (b, d) in blocks { XCTAssertEqual(data[b], d, "block \(b), chunk \(chunk)") }
            }
        }
    }

    func testDamagedFilesAreRefused() throws {
        let good = Self.incrementalFile(blocks: [(1, Self.block(1, 8192))], truncation: 2, blockSize: 8192)
        func parse(_ bytes: [UInt8], size: Int64?) throws {
            let p = IncrementalFileParser(path: "base/5/16384", expectedSize: size, onHeader: { _ in }, onBlock: { _, _, _, _ in })
            try feed(p, bytes, chunk: 1000)
        }
        var bad = good; bad[0] ^= 1
        XCTAssertThrowsError(try parse(bad, size: Int64(bad.count))) { XCTAssertTrue("\($0)".contains("bad magic"), "\($0)") }
        XCTAssertThrowsError(try parse(Array(good.dropLast(10)), size: Int64(good.count))) { XCTAssertTrue("\($0)".contains("expected"), "\($0)") }
        XCTAssertThrowsError(try parse(good, size: Int64(good.count + 8192))) { XCTAssertTrue("\($0)".contains("do not fit"), "\($0)") }
        var pad = good; pad[20] = 1
        XCTAssertThrowsError(try parse(pad, size: Int64(pad.count))) { XCTAssertTrue("\($0)".contains("padding"), "\($0)") }
        XCTAssertThrowsError(try parse(Array(good.prefix(8)), size: nil)) { XCTAssertTrue("\($0)".contains("truncated header"), "\($0)") }
        let twice = Self.incrementalFile(blocks: [(1, Self.block(1, 8192)), (1, Self.block(2, 8192))], truncation: 2, blockSize: 8192)
        XCTAssertThrowsError(try parse(twice, size: Int64(twice.count))) { XCTAssertTrue("\($0)".contains("twice"), "\($0)") }
    }

    /// One chain member's version of a file: whole, or incremental.
    enum Version { case full([UInt8]); case incremental(blocks: [(UInt32, [UInt8])], truncation: UInt32) }

    /// reconstruct.c, transcribed: length from the newest incremental; each block from the newest
    /// member that has it (older members only below the newest truncation_block_length, the full
    /// file only for its whole blocks), else zeros.
    static func oracle(_ chain: [Version], bs: Int) -> [UInt8] {
        guard case .incremental(let nb, let nt) = chain.last! else {
            if case .full(let d) = chain.last! { return d }
            return []
        }
        let length = nb.reduce(nt) { $1.0 >= $0 ? $1.0 + 1 : $0 }
        var out = [UInt8](repeating: 0, count: Int(length) * bs)
        var done = Set<UInt32>()
        for (b, d) in nb { out.replaceSubrange(Int(b) * bs..<(Int(b) + 1) * bs, with: d); done.insert(b) }
        for v in chain.dropLast().reversed() {
            switch v {
            case .incremental(let blocks, _):
                for (b, d) in blocks where b < nt && !done.contains(b) {
                    out.replaceSubrange(Int(b) * bs..<(Int(b) + 1) * bs, with: d); done.insert(b)
                }
            case .full(let d):
                for b in 0..<min(Int(nt), d.count / bs) where !done.contains(UInt32(b)) {
                    out.replaceSubrange(b * bs..<(b + 1) * bs, with: d[b * bs..<(b + 1) * bs])
                }
                return out
            }
        }
        return out
    }

    /// The combine as the restore drives it: newest member first, each member's bytes in `chunk`s.
    /// `existing`: the bytes already in the file (`--delta`): the newest member rewrites it in place.
    func combine(_ chain: [Version], bs: Int, chunk: Int, existing: [UInt8]? = nil, combiner: NativeCombine = NativeCombine()) throws -> [UInt8] {
        let dir = NSTemporaryDirectory() + "incr-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/16384"
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        if let existing { _ = existing.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        let c = combiner
        var newest = true
        for v in chain.reversed() {
            switch v {
            case .incremental(let blocks, let t):
                let bytes = Self.incrementalFile(blocks: blocks, truncation: t, blockSize: bs)
                let p = c.incremental(path: "base/5/16384", fd: fd, filePath: path, memberSize: Int64(bytes.count), newest: newest,
                                      inPlace: newest && existing != nil)
                try feed(p, bytes, chunk: chunk)
            case .full(let d):
                if newest {
                    _ = d.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                } else {
                    let f = c.full(path: "base/5/16384", fd: fd, filePath: path)
                    var i = 0
                    while i < d.count { let n = min(chunk, d.count - i); try d[i..<(i + n)].withUnsafeBytes { try f.feed($0) }; i += n }
                    try f.finish()
                }
            }
            newest = false
            if !c.needsOlder("base/5/16384") { break }
        }
        XCTAssertTrue(c.incomplete.isEmpty)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func testCombineTakesTheNewestBlockAndTheNewestLength() throws {
        let bs = 8192
        let full: Version = .full((0..<5).flatMap { Self.block(UInt8(10 + $0), bs) })
        // Shrunk to 4 blocks, block 1 changed; then block 2 changed, grown to 6 with a hole at 3-4.
        let b1: [(UInt32, [UInt8])] = [(1, Self.block(21, bs)), (6, Self.block(26, bs))]
        let i1: Version = .incremental(blocks: b1, truncation: 4)
        let b2: [(UInt32, [UInt8])] = [(2, Self.block(32, bs)), (5, Self.block(35, bs))]
        let i2: Version = .incremental(blocks: b2, truncation: 3)
        let got = try combine([full, i1, i2], bs: bs, chunk: 300)
        XCTAssertEqual(got.count, 6 * bs)
        XCTAssertEqual(Array(got[0..<bs]), Self.block(10, bs))
        XCTAssertEqual(Array(got[bs..<2 * bs]), Self.block(21, bs))
        XCTAssertEqual(Array(got[2 * bs..<3 * bs]), Self.block(32, bs))
        XCTAssertEqual(Array(got[3 * bs..<5 * bs]), [UInt8](repeating: 0, count: 2 * bs), "at or above the newest truncation length: zeros")
        XCTAssertEqual(Array(got[5 * bs..<6 * bs]), Self.block(35, bs))
        XCTAssertEqual(got, Self.oracle([full, i1, i2], bs: bs))
    }

    /// A full version of 0-8 blocks and 1-4 incrementals of up to 5 blocks each (numbers 0-11,
    /// truncation lengths 0-10), the blocks' bytes telling member and block apart.
    static func randomChain(round: Int, bs: Int, using rng: inout SystemRandomNumberGenerator) -> [Version] {
        let fullBlocks = Int.random(in: 0...8, using: &rng)
        var chain: [Version] = [.full((0..<fullBlocks).flatMap { Self.block(UInt8(truncatingIfNeeded: round &+ $0), bs) })]
        for m in 0..<Int.random(in: 1...4, using: &rng) {
            let t = UInt32.random(in: 0...10, using: &rng)
            let nums = Array(Set((0..<Int.random(in: 0...5, using: &rng)).map { _ in UInt32.random(in: 0...11, using: &rng) })).shuffled()
            chain.append(.incremental(blocks: nums.map { ($0, Self.block(UInt8(truncatingIfNeeded: 100 + m * 13 + Int($0)), bs)) }, truncation: t))
        }
        return chain
    }

    func testCombineEqualsReconstructOnRandomChains() throws {
        var rng = SystemRandomNumberGenerator()
        let bs = 8192
        for round in 0..<80 {
            let chain = Self.randomChain(round: round, bs: bs, using: &rng)
            let chunk = [333, 8192, 20000].randomElement(using: &rng)!
            let got = try combine(chain, bs: bs, chunk: chunk), want = Self.oracle(chain, bs: bs)
            XCTAssertTrue(got == want, "round \(round): \(got.count) bytes, \(want.count) expected, first difference at \((0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }).map(String.init) ?? "the end")")
        }
    }

    /// `--delta`: the same chains combined into a file that already holds other bytes (longer,
    /// shorter, or the right ones) give exactly the oracle; over the right bytes nothing is written.
    func testCombineInPlaceEqualsReconstructWhateverTheFileHeld() throws {
        var rng = SystemRandomNumberGenerator()
        let bs = 8192
        for round in 0..<60 {
            let chain = Self.randomChain(round: round, bs: bs, using: &rng)
            let want = Self.oracle(chain, bs: bs)
            let chunk = [333, 8192, 20000].randomElement(using: &rng)!
            let junk = (0..<Int.random(in: 0...14, using: &rng) * bs).map { _ in UInt8.random(in: 1...255, using: &rng) }
            let got = try combine(chain, bs: bs, chunk: chunk, existing: junk)
            XCTAssertTrue(got == want, "round \(round) over \(junk.count) bytes of junk: \(got.count) bytes, \(want.count) expected, first difference at \((0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }).map(String.init) ?? "the end")")
            let again = NativeCombine()
            XCTAssertTrue(try combine(chain, bs: bs, chunk: chunk, existing: want, combiner: again) == want, "round \(round) over the right bytes")
            XCTAssertEqual(again.rewrittenBytes, 0, "round \(round): bytes written over a file that was already right")
        }
    }

    func testAnOlderIncrementalWithoutANewerOneIsChainDamage() throws {
        let c = NativeCombine()
        let bytes = Self.incrementalFile(blocks: [], truncation: 1, blockSize: 8192)
        let p = c.incremental(path: "base/5/1", fd: -1, filePath: "/x/base/5/1", memberSize: 12, newest: false)
        XCTAssertThrowsError(try feed(p, bytes, chunk: 12)) { XCTAssertTrue("\($0)".contains("no newer member"), "\($0)") }
    }
}
