import Foundation
import Storage
import WALFormat
import Codec

/// Reads an archived file back: fetch, decompress, verify size and CRC-32C against its meta.
public struct ObjectReader {
    public var repository: Repository
    public init(repository: Repository) { self.repository = repository }

    /// Streams the original bytes of `meta`'s object to `sink`. Throws when the object is missing,
    /// undecodable, or its bytes do not match the meta; the caller must then discard what `sink` got.
    public func read(_ meta: ArchivedFileMeta, into sink: ByteSink) throws {
        guard let key = meta.objectKey, let codec = CodecKind(rawValue: meta.codec), let expected = meta.checksum else {
            throw WalctlError.store(.configuration("archive metadata for \(meta.name) is malformed"))
        }
        let decompressor: Decompressor
        // zstd's own frame checksum is skipped: the CRC-32C of the output, checked below against
        // the meta, covers the same bytes end to end (from the file PostgreSQL handed over).
        do { decompressor = try codec.makeDecompressor(verifyFrameChecksum: false) } catch { throw WalctlError.codec(name: key, error) }
        var crc = CRC32C()
        var size: Int64 = 0
        func counting(_ chunk: UnsafeRawBufferPointer) throws {
            crc.update(chunk)
            size += Int64(chunk.count)
            try sink(chunk)
        }
        do {
            try repository.store.read(key: key) { stored in try decompressor.update(stored, into: counting) }
            try decompressor.finish(into: counting)
        } catch let e as StoreError {
            throw WalctlError.store(e)
        } catch let e as CodecError {
            throw WalctlError.codec(name: key, e)
        } catch let e as CipherError {
            throw WalctlError.cipher(e)
        }
        guard crc.value == expected, size == meta.size else {
            throw WalctlError.checksumMismatch(name: meta.name, expected: meta.crc32c, actual: ArchivedFileMeta.hex(crc.value),
                                               size: size, expectedSize: meta.size)
        }
    }

    /// Restores `meta`'s object into `out` (archive-get's `%p`), verified as `read` verifies it. A
    /// zstd object of at least `writeBehindMinimum` bytes (a segment) is decoded into a few small
    /// buffers that a second thread CRC-32Cs and writes behind the decoding (`WriteBehind`): the
    /// wall time of decoding plus writing becomes about the longer of the two, as with `zstd -d`'s
    /// output thread. Anything else, or when the thread cannot be started, goes through `read`.
    /// Either way `out` holds nothing the caller may commit when this throws.
    public func restore(_ meta: ArchivedFileMeta, to out: AtomicFile) throws {
        guard meta.codec == CodecKind.zstd.rawValue, meta.size >= Self.writeBehindMinimum,
              let key = meta.objectKey, let expected = meta.checksum,
              let decoder = try? CodecKind.zstd.makeBufferDecoder(),
              let behind = try? WriteBehind(out: out) else {
            try read(meta) { chunk in try out.write(chunk) }
            return
        }
        let result: (crc: UInt32, size: Int)
        do {
            var buffer = try behind.take()
            var filled = 0
            var decoded: Int64 = 0
            // Decodes `input` into the buffers, handing each full one to the thread; also called with
            // no input at the end, for what zstd still holds.
            func decode(_ input: UnsafeRawBufferPointer) throws {
                var consumed = 0
                while true {
                    let before = (consumed, filled)
                    try decoder.decode(input, consumed: &consumed, into: buffer, filled: &filled)
                    if filled == buffer.count {   // full: hand it over, and call again (zstd may hold more)
                        decoded += Int64(filled)
                        if decoded > meta.size {   // more than the meta's size: stop writing now
                            throw WalctlError.checksumMismatch(name: meta.name, expected: meta.crc32c, actual: "n/a",
                                                               size: decoded, expectedSize: meta.size)
                        }
                        try behind.submit(buffer, count: filled)
                        buffer = try behind.take()
                        filled = 0
                        continue
                    }
                    if consumed >= input.count { break }
                    if before == (consumed, filled) { throw CodecError.corrupt("the decoder made no progress") }
                }
            }
            try repository.store.read(key: key) { stored in try decode(stored) }
            try decode(UnsafeRawBufferPointer(start: nil, count: 0))
            try decoder.finish()
            try behind.submit(buffer, count: filled)
            result = try behind.finish()
        } catch {
            behind.cancel()
            switch error {
            case let e as StoreError: throw WalctlError.store(e)
            case let e as CodecError: throw WalctlError.codec(name: key, e)
            case let e as CipherError: throw WalctlError.cipher(e)
            default: throw error
            }
        }
        guard result.crc == expected, Int64(result.size) == meta.size else {
            throw WalctlError.checksumMismatch(name: meta.name, expected: meta.crc32c, actual: ArchivedFileMeta.hex(result.crc),
                                               size: Int64(result.size), expectedSize: meta.size)
        }
    }

    /// Objects smaller than this (history files, backup labels) are not worth a thread.
    static let writeBehindMinimum: Int64 = 1 << 20
}
