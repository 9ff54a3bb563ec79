/// Writes tar headers in the format `TarReader` reads and PostgreSQL writes: ustar, with a pax (`x`)
/// header before a member whose name or link does not fit, and base-256 sizes from 8 GiB.
/// Only headers and padding: the caller streams each file's bytes between them.
public enum TarWriter {
    /// The header block(s) of one member.
    public static func header(path: String, kind: TarEntry.Kind, mode: UInt32, size: Int64, mtime: Int64,
                              linkTarget: String = "") -> [UInt8] {
        var out: [UInt8] = []
        let name = kind == .directory ? path + "/" : path
        var pax = ""
        if name.utf8.count > 99 { pax += record("path", name) }
        if linkTarget.utf8.count > 99 { pax += record("linkpath", linkTarget) }
        if !pax.isEmpty {
            let body = Array(pax.utf8)
            out += block(name: "././@PaxHeader", type: UInt8(ascii: "x"), mode: 0o644, size: Int64(body.count), mtime: mtime, link: "")
            out += body
            out += [UInt8](repeating: 0, count: padding(Int64(body.count)))
        }
        let type: UInt8
        switch kind {
        case .file: type = UInt8(ascii: "0")
        case .directory: type = UInt8(ascii: "5")
        case .symlink: type = UInt8(ascii: "2")
        case .hardlink: type = UInt8(ascii: "1")
        case .other(let t): type = t
        }
        out += block(name: String(decoding: name.utf8.prefix(99), as: UTF8.self), type: type, mode: mode,
                     size: kind == .file ? size : 0, mtime: mtime,
                     link: String(decoding: linkTarget.utf8.prefix(99), as: UTF8.self))
        return out
    }

    /// Zero bytes after a member of `size` bytes, to the next 512-byte boundary.
    public static func padding(_ size: Int64) -> Int { Int((512 - size % 512) % 512) }

    /// The end-of-archive marker: two zero blocks.
    public static let end = [UInt8](repeating: 0, count: 1024)

    private static func record(_ key: String, _ value: String) -> String {
        // "<len> key=value\n", len counting itself.
        let rest = " \(key)=\(value)\n".utf8.count
        var len = rest + 1
        while String(len).count + rest != len { len = String(len).count + rest }
        return "\(len) \(key)=\(value)\n"
    }

    private static func block(name: String, type: UInt8, mode: UInt32, size: Int64, mtime: Int64, link: String) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int, _ width: Int) {
            for (i, b) in s.utf8.prefix(width).enumerated() { h[at + i] = b }
        }
        func octal(_ v: Int64, _ at: Int, _ width: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, width - 1 - s.count)) + s, at, width - 1)
        }
        put(name, 0, 100)
        octal(Int64(mode & 0o7777), 100, 8)
        octal(0, 108, 8); octal(0, 116, 8)
        if size < 0o77777777777 {
            octal(size, 124, 12)
        } else {
            // GNU base-256: high bit of the first byte set, big-endian value.
            h[124] = 0x80
            var v = size
            for i in stride(from: 135, to: 124, by: -1) { h[i] = UInt8(v & 0xFF); v >>= 8 }
        }
        octal(max(0, mtime), 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        put("postgres", 265, 32)
        put("postgres", 297, 32)
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        octal(Int64(sum), 148, 7)
        h[155] = 0x20
        return h
    }
}
