import CZstd

/// Output chunk size for both zstd directions.
let zstdChunk = 1 << 20

/// zstd with a content checksum in every frame (`zstd -d` verifies it too).
final class ZstdCompressor: Compressor {
    let ctx: OpaquePointer
    let out: UnsafeMutableRawPointer

    init(level: Int32, pledgedSize: UInt64?, workers: Int = 0) throws(CodecError) {
        guard let c = ZSTD_createCCtx() else { throw .initFailed("ZSTD_createCCtx") }
        ctx = c
        out = .allocate(byteCount: zstdChunk, alignment: 16)
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1)
        if workers > 0 { _ = ZSTD_CCtx_setParameter(ctx, ZSTD_c_nbWorkers, Int32(min(workers, 64))) }  // an error: no threads in this libzstd
        if let p = pledgedSize { ZSTD_CCtx_setPledgedSrcSize(ctx, p) }
    }
    deinit { ZSTD_freeCCtx(ctx); out.deallocate() }

    func reset(pledgedSize: UInt64?) throws {
        let r = ZSTD_CCtx_reset(ctx, ZSTD_reset_session_only)
        if ZSTD_isError(r) != 0 { throw CodecError.compressFailed(String(cString: ZSTD_getErrorName(r))) }
        if let p = pledgedSize { ZSTD_CCtx_setPledgedSrcSize(ctx, p) }
    }

    /// The whole input at once, with `ZSTD_c_stableInBuffer` (experimental parameter 9): zstd then
    /// finds its matches in `content` itself instead of copying all of it into its own window
    /// first (about a tenth of a 16 MiB segment's compression instructions; docs/benchmarks.md).
    /// A library that refuses the parameter compresses the usual way. The parameter is cleared
    /// again at the end so `update` (whose slices move) keeps working on a reused context.
    func compress(_ content: UnsafeRawBufferPointer, into sink: ByteSink) throws {
        guard ZSTD_isError(ZSTD_CCtx_setParameter(ctx, ZSTD_c_experimentalParam9, 1)) == 0 else {
            try update(content, into: sink)
            try finish(into: sink)
            return
        }
        defer { _ = ZSTD_CCtx_setParameter(ctx, ZSTD_c_experimentalParam9, 0) }
        try run(content, ZSTD_e_end, sink)
    }

    func update(_ input: UnsafeRawBufferPointer, into sink: ByteSink) throws { try run(input, ZSTD_e_continue, sink) }
    func finish(into sink: ByteSink) throws { try run(UnsafeRawBufferPointer(start: nil, count: 0), ZSTD_e_end, sink) }

    private func run(_ input: UnsafeRawBufferPointer, _ mode: ZSTD_EndDirective, _ sink: ByteSink) throws {
        var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            var outb = ZSTD_outBuffer(dst: out, size: zstdChunk, pos: 0)
            let r = ZSTD_compressStream2(ctx, &outb, &inb, mode)
            if ZSTD_isError(r) != 0 { throw CodecError.compressFailed(String(cString: ZSTD_getErrorName(r))) }
            if outb.pos > 0 { try sink(UnsafeRawBufferPointer(start: out, count: outb.pos)) }
            if mode == ZSTD_e_end ? r == 0 : inb.pos == inb.size { break }
        }
    }
}

final class ZstdDecompressor: Decompressor {
    let ctx: OpaquePointer
    let out: UnsafeMutableRawPointer
    /// 0 once a frame is complete: anything else at `finish` means the object was cut short.
    var pending: Int = 1
    var sawInput = false
    /// Bytes of `out` decoded and not yet given to the sink.
    var filled = 0

    /// `verifyFrameChecksum: false` skips the frame's XXH64 (about a fifth of decompression's CPU)
    /// for callers that check a checksum of the output themselves (ObjectReader: CRC-32C against
    /// the meta). It uses zstd's `ZSTD_d_forceIgnoreChecksum` (experimental parameter 3); a
    /// library without it keeps verifying.
    init(verifyFrameChecksum: Bool = true) throws(CodecError) {
        guard let c = ZSTD_createDCtx() else { throw .initFailed("ZSTD_createDCtx") }
        ctx = c
        out = .allocate(byteCount: zstdChunk, alignment: 16)
        if !verifyFrameChecksum { _ = ZSTD_DCtx_setParameter(ctx, ZSTD_d_experimentalParam3, 1) }
    }
    deinit { ZSTD_freeDCtx(ctx); out.deallocate() }

    func update(_ input: UnsafeRawBufferPointer, into sink: ByteSink) throws {
        guard input.count > 0 else { return }
        sawInput = true
        var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while inb.pos < inb.size {
            try step(&inb, sink)
        }
        // Drain any output still buffered inside zstd.
        while pending != 0 {
            if try step(&inb, sink) == 0 { break }
        }
    }

    /// One decoding call into the rest of `out`. The sink gets `out` only when it is full (and the
    /// rest at `finish`): input arriving in small pieces (64 KiB decrypted chunks, network reads)
    /// still makes 1 MiB writes, which the file writer passes straight to write(2) without copying.
    /// Returns the bytes it decoded.
    @discardableResult
    private func step(_ inb: inout ZSTD_inBuffer, _ sink: ByteSink) throws -> Int {
        var outb = ZSTD_outBuffer(dst: out, size: zstdChunk, pos: filled)
        let r = ZSTD_decompressStream(ctx, &outb, &inb)
        if ZSTD_isError(r) != 0 { throw CodecError.corrupt(String(cString: ZSTD_getErrorName(r))) }
        pending = r
        let produced = outb.pos - filled
        filled = outb.pos
        if filled == zstdChunk {
            filled = 0
            try sink(UnsafeRawBufferPointer(start: out, count: zstdChunk))
        }
        return produced
    }

    func finish(into sink: ByteSink) throws {
        guard sawInput else { throw CodecError.truncated("empty zstd object") }
        if pending != 0 { throw CodecError.truncated("zstd frame ends early") }
        if filled > 0 {
            let n = filled
            filled = 0
            try sink(UnsafeRawBufferPointer(start: out, count: n))
        }
    }
}

/// zstd decoding into buffers the caller hands in, one after the other (archive-get: buffers that
/// a second thread then writes out while decoding goes on, ObjectReader.restore): nothing is copied
/// out of a buffer of the codec's own. The frame checksum is skipped, as in
/// `ZstdDecompressor(verifyFrameChecksum: false)`: the caller checks a CRC-32C of the output.
public final class BufferDecoder {
    let ctx: OpaquePointer
    private var pending: Int = 1
    private var sawInput = false

    init() throws(CodecError) {
        guard let c = ZSTD_createDCtx() else { throw .initFailed("ZSTD_createDCtx") }
        ctx = c
        _ = ZSTD_DCtx_setParameter(ctx, ZSTD_d_experimentalParam3, 1)
    }
    deinit { ZSTD_freeDCtx(ctx) }

    /// Decodes from `input[consumed...]` into `output[filled...]` until the input is used up or the
    /// output is full, advancing both. When it returns with `output` full, zstd may hold more:
    /// call again with a fresh buffer (even with no input left) until a call leaves room.
    public func decode(_ input: UnsafeRawBufferPointer, consumed: inout Int,
                       into output: UnsafeMutableRawBufferPointer, filled: inout Int) throws {
        if input.count > consumed { sawInput = true }
        var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: consumed)
        var outb = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: filled)
        let r = ZSTD_decompressStream(ctx, &outb, &inb)
        if ZSTD_isError(r) != 0 { throw CodecError.corrupt(String(cString: ZSTD_getErrorName(r))) }
        // A call that moved nothing (no input left, nothing held) says nothing about the frame:
        // after a complete frame zstd would already be asking for the next one's header.
        if inb.pos > consumed || outb.pos > filled { pending = r }
        consumed = inb.pos
        filled = outb.pos
    }

    /// The end of the input: throws when the frame is incomplete.
    public func finish() throws {
        guard sawInput else { throw CodecError.truncated("empty zstd object") }
        if pending != 0 { throw CodecError.truncated("zstd frame ends early") }
    }
}
