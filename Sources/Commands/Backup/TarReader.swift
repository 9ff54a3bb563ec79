/// One member of a tar archive.
public struct TarEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case file, directory, symlink, hardlink
        /// Any other type flag (devices, FIFOs, ...): PostgreSQL never writes them.
        case other(UInt8)
    }
    /// Path inside the archive, without a leading `./` or trailing `/`.
    public var path: String
    public var kind: Kind
    /// Permission bits (`0o600`, `0o700`, ...).
    public var mode: UInt32
    public var size: Int64
    /// Target of a symbolic or hard link.
    public var linkTarget: String
    /// Modification time, seconds since the Unix epoch.
    public var mtime: Int64
}

/// Receives the members of a tar archive as `TarReader` parses them.
public protocol TarVisitor: AnyObject {
    /// A member starts; for a regular file `data` calls follow, `size` bytes in all.
    func begin(_ entry: TarEntry) throws
    /// A chunk of the current file, valid only during the call.
    func data(_ bytes: UnsafeRawBufferPointer) throws
    /// The current member is complete.
    func end(_ entry: TarEntry) throws
}

/// A malformed archive, with the byte offset where it went wrong.
public struct TarError: Error, Equatable, CustomStringConvertible {
    public var offset: Int64
    public var message: String
    public var description: String { "tar archive is malformed at byte \(offset): \(message)" }
}

/// A streaming tar parser: ustar headers, plus the pax (`x`) and GNU (`L`, `K`) long-name extensions.
/// Bytes are pushed in with `feed` in chunks of any size; nothing is buffered beyond one 512-byte
/// header (and the body of a pax or long-name member), so memory stays bounded.
///
/// PostgreSQL writes ustar with names up to 99 bytes, base-256 sizes for members of 8 GiB or more,
/// and ends the archive with two zero blocks.
public final class TarReader {
    let visitor: TarVisitor
    private var header = [UInt8]()
    private var current: TarEntry?
    /// Bytes of member data still to come, then padding to skip.
    private var remaining: Int64 = 0
    private var padding: Int64 = 0
    /// Collecting the body of an extended header (`x`, `g`, `L`, `K`).
    private var extKind: UInt8 = 0
    private var extBody = [UInt8]()
    private var pendingPath: String?
    private var pendingLink: String?
    private var pendingSize: Int64?
    private var zeroBlocks = 0
    private var offset: Int64 = 0
    /// True once the end-of-archive marker was read.
    public private(set) var finished = false
    /// Number of members reported.
    public private(set) var memberCount = 0

    public init(visitor: TarVisitor) {
        self.visitor = visitor
        header.reserveCapacity(512)
    }

    /// Parses `bytes`, calling the visitor for each member.
    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        var p = 0
        let n = bytes.count
        while p < n {
            if finished {
                // Anything after the end marker must be zero padding.
                for i in p..<n where bytes[i] != 0 {
                    throw TarError(offset: offset + Int64(i - p), message: "data after the end-of-archive marker")
                }
                offset += Int64(n - p)
                return
            }
            if remaining > 0 {
                let take = Int(min(remaining, Int64(n - p)))
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[p..<(p + take)])
                if extKind != 0 { extBody.append(contentsOf: chunk) } else { try visitor.data(chunk) }
                remaining -= Int64(take); p += take; offset += Int64(take)
                if remaining == 0 { try endMember() }
                continue
            }
            if padding > 0 {
                let take = Int(min(padding, Int64(n - p)))
                padding -= Int64(take); p += take; offset += Int64(take)
                continue
            }
            let take = min(512 - header.count, n - p)
            header.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[p..<(p + take)]))
            p += take; offset += Int64(take)
            if header.count == 512 {
                try parseHeader()
                header.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Checks the archive ended properly (end marker or at least a clean member boundary).
    public func finish() throws {
        if remaining > 0 || padding > 0 || !header.isEmpty || current != nil {
            throw TarError(offset: offset, message: "archive is truncated")
        }
        if !finished && memberCount > 0 && zeroBlocks == 0 {
            throw TarError(offset: offset, message: "archive has no end-of-archive marker")
        }
    }

    private func endMember() throws {
        if extKind != 0 {
            try applyExtended()
            extKind = 0
            extBody.removeAll(keepingCapacity: true)
        } else if let e = current {
            current = nil
            try visitor.end(e)
        }
    }

    private func parseHeader() throws {
        let headerStart = offset - 512
        if header.allSatisfy({ $0 == 0 }) {
            zeroBlocks += 1
            if zeroBlocks >= 2 { finished = true }
            return
        }
        if zeroBlocks > 0 { throw TarError(offset: headerStart, message: "a lone zero block inside the archive") }
        // Checksum: the unsigned sum of the header with the checksum field taken as spaces.
        var sum = 0
        for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
        guard let stored = Self.octal(header[148..<156]), stored == Int64(sum) else {
            throw TarError(offset: headerStart, message: "header checksum mismatch")
        }
        let type = header[156]
        guard let size = Self.number(header[124..<136]), size >= 0 else {
            throw TarError(offset: headerStart, message: "bad size field")
        }
        switch type {
        case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
            guard size <= 1 << 20 else { throw TarError(offset: headerStart, message: "extended header of \(size) bytes") }
            extKind = type
            remaining = size
            padding = (512 - size % 512) % 512
            if size == 0 { try endMember() }
            return
        default: break
        }
        var name = Self.string(header[0..<100])
        let magic = Array(header[257..<262])
        if magic == Array("ustar".utf8) {
            let prefix = Self.string(header[345..<500])
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        if let p = pendingPath { name = p }
        var link = Self.string(header[157..<257])
        if let l = pendingLink { link = l }
        let realSize = pendingSize ?? size
        pendingPath = nil; pendingLink = nil; pendingSize = nil

        let trailingSlash = name.hasSuffix("/")
        while name.hasPrefix("./") { name.removeFirst(2) }
        while name.count > 1 && name.hasSuffix("/") { name.removeLast() }
        let kind: TarEntry.Kind
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = trailingSlash ? .directory : .file
        case UInt8(ascii: "5"): kind = .directory
        case UInt8(ascii: "2"): kind = .symlink
        case UInt8(ascii: "1"): kind = .hardlink
        default: kind = .other(type)
        }
        let mode = UInt32(truncatingIfNeeded: Self.octal(header[100..<108]) ?? 0o600) & 0o7777
        let mtime = Self.number(header[136..<148]) ?? 0
        let entry = TarEntry(path: name, kind: kind, mode: mode, size: kind == .file ? realSize : 0,
                             linkTarget: link, mtime: mtime)
        memberCount += 1
        try visitor.begin(entry)
        if entry.size > 0 {
            current = entry
            remaining = entry.size
            padding = (512 - entry.size % 512) % 512
        } else {
            try visitor.end(entry)
        }
    }

    /// Applies a pax (`x`) or GNU long-name (`L`, `K`) body to the next member; `g` is ignored.
    private func applyExtended() throws {
        switch extKind {
        case UInt8(ascii: "L"): pendingPath = Self.string(extBody[...])
        case UInt8(ascii: "K"): pendingLink = Self.string(extBody[...])
        case UInt8(ascii: "x"):
            // Records: "<len> <key>=<value>\n", len counting the whole record.
            var i = 0
            while i < extBody.count {
                var j = i
                while j < extBody.count && extBody[j] != 0x20 { j += 1 }
                guard j < extBody.count, let len = Int(String(decoding: extBody[i..<j], as: UTF8.self)),
                      len > 0, i + len <= extBody.count else {
                    throw TarError(offset: offset, message: "malformed pax record")
                }
                let record = extBody[(j + 1)..<(i + len - 1)]
                if let eq = record.firstIndex(of: UInt8(ascii: "=")) {
                    let key = String(decoding: record[..<eq], as: UTF8.self)
                    let value = String(decoding: record[(eq + 1)...], as: UTF8.self)
                    switch key {
                    case "path": pendingPath = value
                    case "linkpath": pendingLink = value
                    case "size": pendingSize = Int64(value)
                    default: break
                    }
                }
                i += len
            }
        default: break
        }
    }

    static func string(_ field: ArraySlice<UInt8>) -> String {
        let end = field.firstIndex(of: 0) ?? field.endIndex
        return String(decoding: field[field.startIndex..<end], as: UTF8.self)
    }

    /// An octal field (NUL- or space-terminated, possibly space-padded in front).
    static func octal(_ field: ArraySlice<UInt8>) -> Int64? {
        var v: Int64 = 0
        var seen = false
        for b in field {
            if b == 0 || (b == 0x20 && seen) { break }
            if b == 0x20 { continue }
            guard b >= 0x30 && b <= 0x37 else { return nil }
            v = v * 8 + Int64(b - 0x30)
            seen = true
        }
        return v
    }

    /// A numeric field: octal, or GNU base-256 when the first byte has its high bit set.
    static func number(_ field: ArraySlice<UInt8>) -> Int64? {
        guard let first = field.first else { return nil }
        if first & 0x80 != 0 {
            var v: Int64 = Int64(first & 0x7F)
            for b in field.dropFirst() {
                guard v < (Int64.max >> 8) else { return nil }
                v = v << 8 | Int64(b)
            }
            return v
        }
        return octal(field)
    }
}
