import Foundation
import Testing
@testable import Codec

/// Bytes that compress somewhat, like WAL: runs of zeros and pseudo-random records.
func sampleBytes(_ n: Int, seed: UInt64 = 42) -> [UInt8] {
    var x = seed
    var out = [UInt8](repeating: 0, count: n)
    var i = 0
    while i < n {
        x = x &* 6364136223846793005 &+ 1442695040888963407
        let run = Int(x >> 58) + 1
        if x & 1 == 0 { i += run * 8; continue }
        for _ in 0..<run where i < n { x = x &* 6364136223846793005 &+ 1; out[i] = UInt8(truncatingIfNeeded: x >> 33); i += 1 }
    }
    return out
}

func compress(_ kind: CodecKind, _ input: [UInt8], level: Int32? = nil, chunk: Int = 1 << 20) throws -> [UInt8] {
    let c = try kind.makeCompressor(level: level, pledgedSize: UInt64(input.count))
    var out: [UInt8] = []
    try input.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = min(chunk, raw.count - off)
            try c.update(UnsafeRawBufferPointer(rebasing: raw[off..<(off + n)])) { out.append(contentsOf: $0) }
            off += n
        }
    }
    try c.finish { out.append(contentsOf: $0) }
    return out
}

func decompress(_ kind: CodecKind, _ stored: [UInt8], chunk: Int = 65536) throws -> [UInt8] {
    let d = try kind.makeDecompressor()
    var out: [UInt8] = []
    try stored.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = min(chunk, raw.count - off)
            try d.update(UnsafeRawBufferPointer(rebasing: raw[off..<(off + n)])) { out.append(contentsOf: $0) }
            off += n
        }
    }
    try d.finish { out.append(contentsOf: $0) }
    return out
}

@Suite struct CodecRoundTrip {
    @Test(arguments: CodecKind.allCases)
    func roundTrip(kind: CodecKind) throws {
        let input = sampleBytes(3 << 20)
        let stored = try compress(kind, input)
        if kind != .none { #expect(stored.count < input.count) }
        #expect(try decompress(kind, stored) == input)
    }

    /// `compress` (the whole input at once: zstd's stable input buffer) gives the same content as
    /// the sliced path, and a context used that way still compresses slice by slice afterwards (the
    /// stable-input parameter is cleared: moving slices would otherwise be refused).
    @Test(arguments: CodecKind.allCases)
    func wholeInputThenSlicesOnOneContext(kind: CodecKind) throws {
        let first = sampleBytes(5 << 20, seed: 7), second = sampleBytes(3 << 20, seed: 9)
        let c = try kind.makeCompressor(level: nil, pledgedSize: UInt64(first.count))
        var whole: [UInt8] = []
        try first.withUnsafeBytes { raw in try c.compress(raw) { whole.append(contentsOf: $0) } }
        #expect(try decompress(kind, whole) == first)
        try c.reset(pledgedSize: UInt64(second.count))
        var sliced: [UInt8] = []
        try second.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = min(1 << 20, raw.count - off)
                try c.update(UnsafeRawBufferPointer(rebasing: raw[off..<(off + n)])) { sliced.append(contentsOf: $0) }
                off += n
            }
        }
        try c.finish { sliced.append(contentsOf: $0) }
        #expect(try decompress(kind, sliced) == second)
    }

    /// zstd frames carry an XXH64 of the content in their last 4 bytes: verified by default,
    /// skipped on request (for readers that check their own CRC-32C of the output).
    @Test func zstdFrameChecksumVerifiedUnlessAskedNotTo() throws {
        let input = sampleBytes(1 << 20, seed: 7)
        var stored = try compress(.zstd, input)
        stored[stored.count - 1] ^= 0xFF   // damage the checksum only
        #expect(throws: (any Error).self) { _ = try decompress(.zstd, stored) }
        let d = try CodecKind.zstd.makeDecompressor(verifyFrameChecksum: false)
        var out: [UInt8] = []
        try stored.withUnsafeBytes { try d.update($0) { out.append(contentsOf: $0) } }
        try d.finish { out.append(contentsOf: $0) }
        #expect(out == input)
    }

    /// A reused compressor (the async pusher keeps one per thread) writes frames identical to a
    /// fresh one's, including after a frame abandoned half-way.
    @Test(arguments: CodecKind.allCases)
    func resetCompressorMatchesFresh(kind: CodecKind) throws {
        let a = sampleBytes(2 << 20, seed: 1), b = sampleBytes(1 << 20, seed: 2)
        let c = try kind.makeCompressor(pledgedSize: UInt64(a.count))
        var first: [UInt8] = []
        try a.withUnsafeBytes { try c.update($0) { first.append(contentsOf: $0) } }
        try c.finish { first.append(contentsOf: $0) }
        #expect(first == (try compress(kind, a)))
        // Abandon a frame half-way, then reset for b.
        try c.reset(pledgedSize: UInt64(a.count))
        try a.withUnsafeBytes { try c.update(UnsafeRawBufferPointer(rebasing: $0[..<4096])) { _ in } }
        try c.reset(pledgedSize: UInt64(b.count))
        var second: [UInt8] = []
        try b.withUnsafeBytes { try c.update($0) { second.append(contentsOf: $0) } }
        try c.finish { second.append(contentsOf: $0) }
        #expect(second == (try compress(kind, b)))
        #expect(try decompress(kind, second) == b)
    }

    @Test(arguments: [CodecKind.zstd, .gzip])
    func emptyInput(kind: CodecKind) throws {
        let stored = try compress(kind, [])
        #expect(!stored.isEmpty)
        #expect(try decompress(kind, stored) == [])
    }

    @Test(arguments: [CodecKind.zstd, .gzip])
    func truncatedObjectIsAnError(kind: CodecKind) throws {
        let stored = try compress(kind, sampleBytes(1 << 20))
        #expect(throws: CodecError.self) { try decompress(kind, Array(stored.dropLast(7))) }
    }

    @Test(arguments: [CodecKind.zstd, .gzip])
    func corruptObjectIsAnError(kind: CodecKind) throws {
        var stored = try compress(kind, sampleBytes(1 << 20))
        for i in stride(from: stored.count / 2, to: stored.count / 2 + 16, by: 1) { stored[i] ^= 0x5A }
        #expect(throws: CodecError.self) { try decompress(kind, stored) }
    }

    @Test func trailingGarbageAfterGzipIsAnError() throws {
        let stored = try compress(.gzip, sampleBytes(4096)) + [1, 2, 3]
        #expect(throws: CodecError.self) { try decompress(.gzip, stored) }
    }

    @Test func settingNames() {
        #expect(CodecKind(setting: "zst") == .zstd)
        #expect(CodecKind(setting: "GZIP") == .gzip)
        #expect(CodecKind(setting: "none") == CodecKind.none)
        #expect(CodecKind(setting: "lz4") == nil)
    }
}

/// The stored objects are standard frames: the system `zstd` and `gunzip` read them.
@Suite struct CodecInterop {
    func run(_ tool: String, _ args: [String], input: [UInt8]) throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-codec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let inURL = dir.appendingPathComponent("in"), outURL = dir.appendingPathComponent("out")
        try Data(input).write(to: inURL)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "\(tool) \(args.joined(separator: " ")) < '\(inURL.path)' > '\(outURL.path)'"]
        try p.run(); p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(tool) failed")
        return Array(try Data(contentsOf: outURL))
    }

    @Test func zstdCLIReadsOurFrames() throws {
        let input = sampleBytes(2 << 20)
        #expect(try run("zstd", ["-d", "-q", "-c"], input: try compress(.zstd, input)) == input)
    }

    @Test func gunzipReadsOurStreams() throws {
        let input = sampleBytes(2 << 20)
        #expect(try run("gunzip", ["-c"], input: try compress(.gzip, input)) == input)
    }

    @Test func weReadTheCLIsFrames() throws {
        let input = sampleBytes(1 << 20)
        #expect(try decompress(.zstd, try run("zstd", ["-3", "-q", "-c"], input: input)) == input)
        #expect(try decompress(.gzip, try run("gzip", ["-c"], input: input)) == input)
    }
}

/// `BufferDecoder`: zstd decoding into the caller's buffers, one after the other.
@Suite struct BufferDecoding {
    /// Decodes `stored` (fed in `chunk`-byte pieces) into buffers of `bufferSize` bytes, as
    /// ObjectReader.restore does; returns the bytes and the fill of every buffer handed over.
    func decodeInBuffers(_ stored: [UInt8], bufferSize: Int, chunk: Int = 300_000) throws -> (bytes: [UInt8], fills: [Int]) {
        let d = try #require(try CodecKind.zstd.makeBufferDecoder())
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var out: [UInt8] = [], fills: [Int] = []
        var filled = 0
        func feed(_ input: UnsafeRawBufferPointer) throws {
            var consumed = 0
            while true {
                try d.decode(input, consumed: &consumed, into: buffer, filled: &filled)
                if filled == buffer.count {
                    out.append(contentsOf: buffer); fills.append(filled); filled = 0
                    continue
                }
                if consumed >= input.count { break }
            }
        }
        try stored.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = min(chunk, raw.count - off)
                try feed(UnsafeRawBufferPointer(rebasing: raw[off..<(off + n)]))
                off += n
            }
        }
        try feed(UnsafeRawBufferPointer(start: nil, count: 0))
        try d.finish()
        out.append(contentsOf: buffer[0..<filled]); fills.append(filled)
        return (out, fills)
    }

    @Test(arguments: [(4096, 300_000), (1 << 18, 1000), (1 << 18, 1 << 22), (1_000_003, 65536)])
    func roundTripAnyBufferAndChunk(bufferSize: Int, chunk: Int) throws {
        let input = sampleBytes(3 << 20)
        let stored = try compress(.zstd, input)
        let (out, fills) = try decodeInBuffers(stored, bufferSize: bufferSize, chunk: chunk)
        #expect(out == input)
        #expect(fills.dropLast().allSatisfy { $0 == bufferSize })   // every buffer but the last is full
    }

    @Test func truncatedCorruptAndEmptyAreErrors() throws {
        let input = sampleBytes(1 << 20)
        let stored = try compress(.zstd, input)
        #expect(throws: CodecError.self) { _ = try decodeInBuffers(Array(stored.dropLast(7)), bufferSize: 1 << 18) }
        var bad = stored
        for i in stride(from: bad.count / 2, to: bad.count / 2 + 16, by: 1) { bad[i] ^= 0x5A }
        // The frame checksum is skipped (the caller checks a CRC of the output): corruption shows
        // either as a decoder error or as different bytes, never as the original.
        do { #expect(try decodeInBuffers(bad, bufferSize: 1 << 18).bytes != input) } catch { #expect(error is CodecError) }
        #expect(throws: CodecError.self) { _ = try decodeInBuffers([], bufferSize: 16) }
    }

    @Test func onlyZstdHasOne() throws {
        #expect(try CodecKind.gzip.makeBufferDecoder() == nil)
        #expect(try CodecKind.none.makeBufferDecoder() == nil)
    }
}
