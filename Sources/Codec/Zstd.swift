import CZstd

/// Output chunk size for both zstd directions.
let zstdChunk = 1 << 20

/// zstd with a content checksum in every frame (`zstd -d` verifies it too).
final class ZstdCompressor: Compressor {
    let ctx: OpaquePointer
    let out: UnsafeMutableRawPointer

    init(level: Int32, pledgedSize: UInt64?) throws(CodecError) {
        guard let c = ZSTD_createCCtx() else { throw .initFailed("ZSTD_createCCtx") }
        ctx = c
        out = .allocate(byteCount: zstdChunk, alignment: 16)
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1)
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
            var outb = ZSTD_outBuffer(dst: out, size: zstdChunk, pos: 0)
            let r = ZSTD_decompressStream(ctx, &outb, &inb)
            if ZSTD_isError(r) != 0 { throw CodecError.corrupt(String(cString: ZSTD_getErrorName(r))) }
            pending = r
            if outb.pos > 0 { try sink(UnsafeRawBufferPointer(start: out, count: outb.pos)) }
        }
        // Drain any output still buffered inside zstd.
        while pending != 0 {
            var outb = ZSTD_outBuffer(dst: out, size: zstdChunk, pos: 0)
            let r = ZSTD_decompressStream(ctx, &outb, &inb)
            if ZSTD_isError(r) != 0 { throw CodecError.corrupt(String(cString: ZSTD_getErrorName(r))) }
            pending = r
            if outb.pos == 0 { break }
            try sink(UnsafeRawBufferPointer(start: out, count: outb.pos))
        }
    }

    func finish(into sink: ByteSink) throws {
        guard sawInput else { throw CodecError.truncated("empty zstd object") }
        if pending != 0 { throw CodecError.truncated("zstd frame ends early") }
    }
}
