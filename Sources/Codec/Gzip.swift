import CZlib

let gzipChunk = 1 << 18

/// gzip (RFC 1952) through zlib: `gunzip` reads every object.
final class GzipCompressor: Compressor {
    var stream = z_stream()
    let out: UnsafeMutablePointer<UInt8>

    init(level: Int32) throws(CodecError) {
        out = .allocate(capacity: gzipChunk)
        // windowBits 15 + 16 = gzip wrapper.
        let r = walctl_deflateInit2(&stream, level, 15 + 16)
        guard r == Z_OK else { out.deallocate(); throw .initFailed("deflateInit2 returned \(r)") }
    }
    deinit { deflateEnd(&stream); out.deallocate() }

    func reset(pledgedSize: UInt64?) throws {
        let r = deflateReset(&stream)
        guard r == Z_OK else { throw CodecError.compressFailed("deflateReset returned \(r)") }
    }

    func update(_ input: UnsafeRawBufferPointer, into sink: ByteSink) throws { try run(input, Z_NO_FLUSH, sink) }
    func finish(into sink: ByteSink) throws { try run(UnsafeRawBufferPointer(start: nil, count: 0), Z_FINISH, sink) }

    private func run(_ input: UnsafeRawBufferPointer, _ flush: Int32, _ sink: ByteSink) throws {
        // zlib's avail_in is 32-bit: feed large inputs in slices.
        var offset = 0
        repeat {
            let n = min(input.count - offset, 1 << 30)
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + offset })
            stream.avail_in = UInt32(n)
            offset += n
            let mode = offset == input.count ? flush : Z_NO_FLUSH
            repeat {
                stream.next_out = out
                stream.avail_out = UInt32(gzipChunk)
                let r = deflate(&stream, mode)
                if r == Z_STREAM_ERROR { throw CodecError.compressFailed("deflate returned \(r)") }
                let produced = gzipChunk - Int(stream.avail_out)
                if produced > 0 { try sink(UnsafeRawBufferPointer(start: out, count: produced)) }
                if mode == Z_FINISH && r == Z_STREAM_END { return }
            } while stream.avail_out == 0 || (mode == Z_FINISH)
        } while offset < input.count
    }
}

final class GzipDecompressor: Decompressor {
    var stream = z_stream()
    let out: UnsafeMutablePointer<UInt8>
    var ended = false

    init() throws(CodecError) {
        out = .allocate(capacity: gzipChunk)
        let r = walctl_inflateInit2(&stream, 15 + 16)
        guard r == Z_OK else { out.deallocate(); throw .initFailed("inflateInit2 returned \(r)") }
    }
    deinit { inflateEnd(&stream); out.deallocate() }

    func update(_ input: UnsafeRawBufferPointer, into sink: ByteSink) throws {
        guard input.count > 0 else { return }
        if ended { throw CodecError.corrupt("data after the end of the gzip stream") }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        repeat {
            stream.next_out = out
            stream.avail_out = UInt32(gzipChunk)
            let r = inflate(&stream, Z_NO_FLUSH)
            switch r {
            case Z_OK, Z_BUF_ERROR: break
            case Z_STREAM_END: ended = true
            default:
                throw CodecError.corrupt(stream.msg.map { String(cString: $0) } ?? "inflate returned \(r)")
            }
            let produced = gzipChunk - Int(stream.avail_out)
            if produced > 0 { try sink(UnsafeRawBufferPointer(start: out, count: produced)) }
            if ended {
                if stream.avail_in > 0 { throw CodecError.corrupt("data after the end of the gzip stream") }
                break
            }
            if r == Z_BUF_ERROR && produced == 0 { break }
        } while stream.avail_in > 0 || stream.avail_out == 0
    }

    func finish(into sink: ByteSink) throws {
        if !ended { throw CodecError.truncated("gzip stream ends early") }
    }
}
