import Foundation

/// The encrypted object format (docs/encryption.md, byte by byte):
///
/// ```
/// header (36 bytes)
///   0   8  magic "WCTLENC" + format version 0x01
///   8   4  chunk size, big-endian (65536)
///   12 16  object salt (random): object key = HMAC-SHA-256(data key, "walctl object key v1" || salt)
///   28  8  nonce prefix (random)
/// chunks, in order, each:  ciphertext (chunk size bytes; the final chunk 0...chunk size) || tag (16)
///   nonce = nonce prefix || big-endian UInt32 (index | 0x80000000 on the final chunk)
///   AAD   = header || UInt32 index || UInt8 final (1/0) || UInt8 len || kind || UInt16 len || object name
/// ```
///
/// Every object has exactly one final chunk (possibly empty). Truncation at a chunk boundary leaves a
/// non-final chunk last (its final-flag nonce does not open it); removing, swapping or reordering
/// chunks changes their index; moving an object to another name changes the AAD.
public enum ChunkFormat {
    public static let magic: [UInt8] = Array("WCTLENC".utf8) + [1]
    public static let headerSize = 36
    public static let tagSize = 16
    public static let defaultChunkSize = 65536
    /// Chunk sizes a reader accepts (the header is authenticated, so this bounds memory only).
    public static let chunkSizeRange = 4096...(16 << 20)

    /// True when `bytes` start like an encrypted walctl object.
    public static func looksEncrypted(_ bytes: [UInt8]) -> Bool {
        bytes.count >= magic.count && Array(bytes.prefix(magic.count)) == magic
    }

    /// The encrypted size of `plaintext` bytes.
    public static func encryptedSize(plaintext: Int64, chunkSize: Int = defaultChunkSize) -> Int64 {
        let full = plaintext / Int64(chunkSize)
        let chunks = plaintext % Int64(chunkSize) == 0 && plaintext > 0 ? full : full + 1
        return Int64(headerSize) + plaintext + chunks * Int64(tagSize)
    }

    static func objectKey(dataKey: [UInt8], salt: ArraySlice<UInt8>) throws(CipherError) -> [UInt8] {
        try CipherPrimitives.hmac(key: dataKey, Array("walctl object key v1".utf8) + salt)
    }

    /// AAD without the per-chunk part: header || (index, final filled in per chunk) || kind || name.
    static func aadTemplate(header: [UInt8], kind: String, name: String) -> [UInt8] {
        let k = Array(kind.utf8.prefix(255)), n = Array(name.utf8.prefix(65535))
        var a = header
        a += [0, 0, 0, 0, 0]
        a.append(UInt8(k.count)); a += k
        a.append(UInt8(n.count >> 8)); a.append(UInt8(n.count & 0xff)); a += n
        return a
    }

    static func setChunk(_ aad: inout [UInt8], nonce: inout [UInt8], index: UInt32, final: Bool) {
        let h = headerSize
        aad[h] = UInt8(index >> 24); aad[h + 1] = UInt8((index >> 16) & 0xff); aad[h + 2] = UInt8((index >> 8) & 0xff); aad[h + 3] = UInt8(index & 0xff)
        aad[h + 4] = final ? 1 : 0
        let v = index | (final ? 0x8000_0000 : 0)
        nonce[8] = UInt8(v >> 24); nonce[9] = UInt8((v >> 16) & 0xff); nonce[10] = UInt8((v >> 8) & 0xff); nonce[11] = UInt8(v & 0xff)
    }
    static let maxChunks: UInt32 = 0x7fff_ffff
}

/// Encrypts one object as a stream: `update` with the plaintext in any pieces, then `finish`;
/// the encrypted bytes go to `emit` in order (the header first).
public final class ObjectSealer {
    private let gcm: GCM
    private var header: [UInt8]
    private var aad: [UInt8]
    private var nonce: [UInt8]
    private let chunkSize: Int
    private var pending: [UInt8]
    private var out: [UInt8]
    private var index: UInt32 = 0
    private var headerSent = false
    private let name: String

    public init(dataKey: [UInt8], kind: String, name: String, chunkSize: Int = ChunkFormat.defaultChunkSize) throws(CipherError) {
        let random = try CipherPrimitives.random(24)
        var h = ChunkFormat.magic
        let cs = UInt32(chunkSize)
        h += [UInt8(cs >> 24), UInt8((cs >> 16) & 0xff), UInt8((cs >> 8) & 0xff), UInt8(cs & 0xff)]
        h += random
        header = h
        gcm = try GCM(key: try ChunkFormat.objectKey(dataKey: dataKey, salt: random[0..<16]), encrypt: true)
        nonce = Array(random[16..<24]) + [0, 0, 0, 0]
        aad = ChunkFormat.aadTemplate(header: h, kind: kind, name: name)
        self.chunkSize = chunkSize
        self.name = name
        pending = []; pending.reserveCapacity(chunkSize)
        out = [UInt8](repeating: 0, count: chunkSize + ChunkFormat.tagSize)
    }

    public func update(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        while offset < bytes.count {
            if pending.count == chunkSize {
                // More follows: the buffered chunk is not the last one.
                try seal(final: false, emit: emit)
            }
            let take = min(chunkSize - pending.count, bytes.count - offset)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
            offset += take
        }
    }

    /// Seals what is buffered as the final chunk (possibly empty).
    public func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try seal(final: true, emit: emit)
    }

    private func seal(final: Bool, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        if !headerSent { try header.withUnsafeBytes { try emit($0) }; headerSent = true }
        guard index <= ChunkFormat.maxChunks else { throw CipherError.library("object \(name) is too large to encrypt (2^31 chunks)") }
        ChunkFormat.setChunk(&aad, nonce: &nonce, index: index, final: final)
        let n = pending.count
        let ok = nonce.withUnsafeBytes { nb in aad.withUnsafeBytes { ab in pending.withUnsafeBytes { pb in out.withUnsafeMutableBytes { ob in
            gcm.seal(nonce: nb, aad: ab, input: pb, output: ob.baseAddress!, tag: ob.baseAddress! + n) } } } }
        guard ok else { throw CipherPrimitives.libraryError("AES-256-GCM") }
        try out.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<(n + ChunkFormat.tagSize)])) }
        pending.removeAll(keepingCapacity: true)
        index += 1
    }

    /// Encrypts a whole object in memory.
    public static func seal(_ plaintext: [UInt8], dataKey: [UInt8], kind: String, name: String,
                            chunkSize: Int = ChunkFormat.defaultChunkSize) throws -> [UInt8] {
        let s = try ObjectSealer(dataKey: dataKey, kind: kind, name: name, chunkSize: chunkSize)
        var out: [UInt8] = []
        try plaintext.withUnsafeBytes { try s.update($0) { out.append(contentsOf: $0) } }
        try s.finish { out.append(contentsOf: $0) }
        return out
    }
}

/// Decrypts one object as a stream: `update` with the stored bytes in any pieces, then `finish`.
/// Each chunk's plaintext reaches `emit` only after its tag was checked; a failure throws
/// `CipherError.tampered` and the caller must discard what `emit` got (a later chunk, or the
/// missing final chunk, may still fail).
public final class ObjectOpener {
    private let dataKey: [UInt8]
    private let kind: String
    private let name: String
    private var header: [UInt8] = []
    private var gcm: GCM?
    private var aad: [UInt8] = []
    private var nonce: [UInt8] = []
    private var chunkSize = 0
    private var pending: [UInt8] = []
    private var out: [UInt8] = []
    private var index: UInt32 = 0
    private var finished = false

    public init(dataKey: [UInt8], kind: String, name: String) {
        self.dataKey = dataKey; self.kind = kind; self.name = name
    }

    private func tampered(_ why: String) -> CipherError { .tampered(key: name, reason: why) }

    public func update(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        if gcm == nil {
            let take = min(ChunkFormat.headerSize - header.count, bytes.count)
            header.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<take]))
            offset = take
            if header.count == ChunkFormat.headerSize { try start() } else { return }
        }
        let full = chunkSize + ChunkFormat.tagSize
        while offset < bytes.count {
            if pending.count == full {
                try open(final: false, emit: emit)
            }
            let take = min(full - pending.count, bytes.count - offset)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
            offset += take
        }
    }

    private func start() throws {
        guard Array(header.prefix(8)) == ChunkFormat.magic else {
            if Array(header.prefix(7)) == Array(ChunkFormat.magic.prefix(7)) { throw tampered("unknown format version \(header[7])") }
            throw tampered("it is not an encrypted walctl object (a plaintext object in an encrypted repository)")
        }
        let cs = Int(header[8]) << 24 | Int(header[9]) << 16 | Int(header[10]) << 8 | Int(header[11])
        guard ChunkFormat.chunkSizeRange.contains(cs) else { throw tampered("chunk size \(cs) in its header") }
        chunkSize = cs
        gcm = try GCM(key: try ChunkFormat.objectKey(dataKey: dataKey, salt: header[12..<28]), encrypt: false)
        nonce = Array(header[28..<36]) + [0, 0, 0, 0]
        aad = ChunkFormat.aadTemplate(header: header, kind: kind, name: name)
        pending.reserveCapacity(cs + ChunkFormat.tagSize)
        out = [UInt8](repeating: 0, count: cs + 1)
    }

    /// The end of the stored bytes: opens the final chunk.
    public func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard gcm != nil else { throw tampered("truncated: \(header.count) of the \(ChunkFormat.headerSize) header bytes") }
        guard pending.count >= ChunkFormat.tagSize else {
            throw tampered("truncated: chunk \(index) has \(pending.count) bytes, less than its tag")
        }
        try open(final: true, emit: emit)
        finished = true
    }

    private func open(final: Bool, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let gcm, index <= ChunkFormat.maxChunks else { throw tampered("too many chunks") }
        ChunkFormat.setChunk(&aad, nonce: &nonce, index: index, final: final)
        let n = pending.count - ChunkFormat.tagSize
        let ok = nonce.withUnsafeBytes { nb in aad.withUnsafeBytes { ab in pending.withUnsafeBytes { pb in out.withUnsafeMutableBytes { ob in
            gcm.open(nonce: nb, aad: ab, input: UnsafeRawBufferPointer(rebasing: pb[0..<n]), tag: pb.baseAddress! + n, output: ob.baseAddress!) } } } }
        guard ok else {
            throw tampered(final ? "chunk \(index), the last one stored, does not authenticate as the final chunk (changed, truncated or reordered)"
                                 : "chunk \(index) does not authenticate (changed, reordered or from another object)")
        }
        try out.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        pending.removeAll(keepingCapacity: true)
        index += 1
    }

    /// Decrypts a whole object in memory.
    public static func open(_ stored: [UInt8], dataKey: [UInt8], kind: String, name: String) throws -> [UInt8] {
        let o = ObjectOpener(dataKey: dataKey, kind: kind, name: name)
        var out: [UInt8] = []
        try stored.withUnsafeBytes { try o.update($0) { out.append(contentsOf: $0) } }
        try o.finish { out.append(contentsOf: $0) }
        return out
    }
}
