import Foundation

/// The one formatting helper of walctl's human output: sizes with binary prefixes, counts with the
/// right singular or plural, durations, and aligned tables with a header.
public enum Human {
    /// `0 B`, `512 B`, `1.0 KiB`, `15.3 MiB`, `2.00 GiB`: binary prefixes, three significant digits
    /// (a whole number of bytes below 1 KiB). Never "0 MiB" for a small non-zero size.
    public static func bytes<I: BinaryInteger>(_ n: I) -> String {
        let v = Int64(clamping: n)
        if v < 0 { return "-" + bytes(-(v == Int64.min ? Int64.max : v)) }
        if v < 1024 { return "\(v) B" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var x = Double(v) / 1024
        var i = 0
        while x >= 1024 && i < units.count - 1 { x /= 1024; i += 1 }
        // Three significant digits; rounding may reach 1024 (1023.96 KiB): carry into the next unit.
        var text = x >= 100 ? String(format: "%.0f", x) : x >= 10 ? String(format: "%.1f", x) : String(format: "%.2f", x)
        if text == "1024" && i < units.count - 1 { i += 1; text = "1.00" }
        return text + " " + units[i]
    }

    /// A rate: `bytes(n) + "/s"`.
    public static func rate(_ bytesPerSecond: Double) -> String {
        guard bytesPerSecond.isFinite, bytesPerSecond >= 0 else { return "-" }
        return bytes(Int64(bytesPerSecond.rounded())) + "/s"
    }

    /// `1 segment`, `2 segments`, `0 segments`; `plural` when not `singular + "s"`.
    public static func count<I: BinaryInteger>(_ n: I, _ singular: String, _ plural: String? = nil) -> String {
        "\(n) " + (n == 1 ? singular : plural ?? singular + "s")
    }

    /// Seconds as `0.4 s`, `12 s`, `3 min 05 s`, `2 h 04 min`.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 10 { return String(format: "%.1f s", seconds) }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return String(format: "%d min %02d s", s / 60, s % 60) }
        return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
    }

    /// Column alignment in `table`.
    public enum Align: Sendable { case left, right }

    /// An aligned table: the header line, then one line per row; columns separated by two spaces,
    /// each as wide as its widest cell (`align` per column, default left; the last column is not
    /// padded when left-aligned).
    public static func table(_ header: [String], _ rows: [[String]], align: [Align] = []) -> [String] {
        let n = header.count
        var width = header.map(\.count)
        for r in rows { for (i, c) in r.prefix(n).enumerated() { width[i] = max(width[i], c.count) } }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for i in 0..<n {
                let c = i < cells.count ? cells[i] : ""
                let pad = String(repeating: " ", count: width[i] - c.count)
                let a = i < align.count ? align[i] : .left
                if a == .right { parts.append(pad + c) } else { parts.append(i == n - 1 ? c : c + pad) }
            }
            return parts.joined(separator: "  ")
        }
        return [line(header)] + rows.map(line)
    }
}
