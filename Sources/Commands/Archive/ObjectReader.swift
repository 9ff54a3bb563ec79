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
}
