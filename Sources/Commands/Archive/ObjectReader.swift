import Foundation
import Storage
import WALFormat
import Codec
import FastPath
import LocalFS

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
    /// zstd object of at least `writeBehindMinimum` bytes (a segment) goes through
    /// `SegmentRestore.zstd` (FastPath: the decoding with the writes behind it on a second thread,
    /// shared with walctl-fast's direct get). Anything else, or when the thread cannot be started,
    /// goes through `read`. Either way `out` holds nothing the caller may commit when this throws.
    public func restore(_ meta: ArchivedFileMeta, to out: AtomicFile) throws {
        let plain = { try read(meta) { chunk in try out.write(chunk) } }
        guard meta.codec == CodecKind.zstd.rawValue, meta.size >= Self.writeBehindMinimum,
              let key = meta.objectKey, let expected = meta.checksum,
              let decoder = try? CodecKind.zstd.makeBufferDecoder() else {
            return try plain()
        }
        let result: (crc: UInt32, size: Int)
        do {
            guard let r = try SegmentRestore.zstd(expectedSize: meta.size, into: out.file, decoder: decoder, read: { sink in
                try repository.store.read(key: key, into: sink)
            }) else { return try plain() }
            result = r
        } catch {
            switch error {
            case let e as StoreError: throw WalctlError.store(e)
            case let e as CodecError: throw WalctlError.codec(name: key, e)
            case is SegmentRestore.NoProgress: throw WalctlError.codec(name: key, .corrupt("the decoder made no progress"))
            case let e as CipherError: throw WalctlError.cipher(e)
            case let e as LocalFSError: throw WalctlError(e)
            case let e as SegmentRestore.TooLong:   // more than the meta's size: the writing stopped there
                throw WalctlError.checksumMismatch(name: meta.name, expected: meta.crc32c, actual: "n/a",
                                                   size: e.decoded, expectedSize: meta.size)
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
