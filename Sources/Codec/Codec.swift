/// Compression codecs for archived objects. Every object is a standard frame: `zstd -d` or `gunzip`
/// on a stored object gives back the original bytes.
public enum CodecKind: String, CaseIterable, Sendable, Codable {
    case zstd
    case gzip
    case none

    /// The object key's extension (`""` for none).
    public var fileExtension: String {
        switch self { case .zstd: return "zst"; case .gzip: return "gz"; case .none: return "" }
    }

    /// Parses a setting value: `zstd`/`zst`, `gzip`/`gz`, `none`.
    public init?(setting: String) {
        switch setting.lowercased() {
        case "zstd", "zst": self = .zstd
        case "gzip", "gz": self = .gzip
        case "none", "off": self = .none
        default: return nil
        }
    }

    /// The level used when none is configured.
    public var defaultLevel: Int32 {
        switch self { case .zstd: return 3; case .gzip: return 6; case .none: return 0 }
    }

    /// Valid levels for the codec.
    public var levels: ClosedRange<Int32> {
        switch self { case .zstd: return 1...19; case .gzip: return 1...9; case .none: return 0...0 }
    }

    /// A new streaming compressor. `pledgedSize` (the input size, when known) lets zstd record the
    /// content size in the frame header. `workers` > 0 (zstd only) compresses on that many threads of
    /// zstd's own while the caller goes on feeding input (`ZSTD_c_nbWorkers`: for large streams such
    /// as backup archives; the frame is still one standard zstd frame). A library built without
    /// threads compresses on the caller's thread.
    public func makeCompressor(level: Int32? = nil, pledgedSize: UInt64? = nil, workers: Int = 0) throws(CodecError) -> Compressor {
        switch self {
        case .zstd: return try ZstdCompressor(level: level ?? defaultLevel, pledgedSize: pledgedSize, workers: workers)
        case .gzip: return try GzipCompressor(level: level ?? defaultLevel)
        case .none: return PassThrough()
        }
    }

    /// A decoder into the caller's buffers (`BufferDecoder`); nil for codecs without one (gzip,
    /// none: use `makeDecompressor`).
    public func makeBufferDecoder() throws(CodecError) -> BufferDecoder? {
        guard self == .zstd else { return nil }
        return try BufferDecoder()
    }

    /// A new streaming decompressor. `verifyFrameChecksum: false` (zstd) skips the frame's own
    /// checksum: only for callers that verify a checksum of the output themselves.
    public func makeDecompressor(verifyFrameChecksum: Bool = true) throws(CodecError) -> Decompressor {
        switch self {
        case .zstd: return try ZstdDecompressor(verifyFrameChecksum: verifyFrameChecksum)
        case .gzip: return try GzipDecompressor()
        case .none: return PassThrough()
        }
    }
}

/// Where a codec hands its output. Called with chunks that are only valid during the call.
public typealias ByteSink = (UnsafeRawBufferPointer) throws -> Void

/// A streaming compressor: feed input with `update`, end the frame with `finish`.
public protocol Compressor: AnyObject {
    func update(_ input: UnsafeRawBufferPointer, into sink: ByteSink) throws
    func finish(into sink: ByteSink) throws
    /// Abandons any frame in progress and starts a new one with the same settings, keeping the
    /// allocated state (a pusher compressing file after file saves the allocation and page faults).
    func reset(pledgedSize: UInt64?) throws
    /// Compresses the whole of `content`, which stays valid and unmodified for the call, and ends
    /// the frame. The output still reaches `sink` in chunks while the rest compresses.
    func compress(_ content: UnsafeRawBufferPointer, into sink: ByteSink) throws
}

extension Compressor {
    /// `update` in 4 MiB slices, then `finish`.
    public func compress(_ content: UnsafeRawBufferPointer, into sink: ByteSink) throws {
        var offset = 0
        while offset < content.count {
            let n = min(4 << 20, content.count - offset)
            try update(UnsafeRawBufferPointer(rebasing: content[offset..<(offset + n)]), into: sink)
            offset += n
        }
        try finish(into: sink)
    }
}

/// A streaming decompressor: feed stored bytes with `update`; `finish` throws when the frame is
/// incomplete or corrupt, so a truncated object is never taken for a whole one.
public protocol Decompressor: AnyObject {
    func update(_ input: UnsafeRawBufferPointer, into sink: ByteSink) throws
    func finish(into sink: ByteSink) throws
}

/// Codec failures.
public enum CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    case initFailed(String)
    case compressFailed(String)
    case corrupt(String)
    case truncated(String)

    public var description: String {
        switch self {
        case .initFailed(let m): return "cannot start codec: \(m)"
        case .compressFailed(let m): return "compression failed: \(m)"
        case .corrupt(let m): return "stored object is corrupt: \(m)"
        case .truncated(let m): return "stored object is truncated: \(m)"
        }
    }
}

/// The `none` codec: bytes pass through unchanged.
final class PassThrough: Compressor, Decompressor {
    func update(_ input: UnsafeRawBufferPointer, into sink: ByteSink) throws { if input.count > 0 { try sink(input) } }
    func finish(into sink: ByteSink) throws {}
    func reset(pledgedSize: UInt64?) throws {}
}
