/// Just enough XML for S3's answers (errors, ListObjectsV2, multipart): flat elements, no
/// attributes needed, the five predefined entities and numeric character references.
/// Avoids FoundationXML, which pulls libxml2 into every process.
enum S3XML {
    /// The text of every `<tag>…</tag>` in `xml`, entity-decoded, in document order.
    static func values(_ xml: Substring, _ tag: String) -> [String] {
        blocks(xml, tag).map { decode($0) }
    }

    static func value(_ xml: Substring, _ tag: String) -> String? { values(xml, tag).first }
    static func value(_ xml: String, _ tag: String) -> String? { value(xml[...], tag) }

    /// The raw inner text of every `<tag>…</tag>` (also matches `<tag attr="…">`).
    static func blocks(_ xml: Substring, _ tag: String) -> [Substring] {
        var out: [Substring] = []
        let open = "<" + tag
        let close = "</" + tag + ">"
        var rest = xml
        while let o = rest.range(of: open) {
            let after = rest[o.upperBound...]
            guard let first = after.first else { break }
            if first == "/" && after.hasPrefix("/>") {  // <tag/>
                out.append(after[after.startIndex..<after.startIndex])
                rest = after.dropFirst(2)
                continue
            }
            guard first == ">" || first == " " else { rest = after; continue }  // <tagOther>
            guard let gt = after.firstIndex(of: ">") else { break }
            let body = after[after.index(after: gt)...]
            guard let c = body.range(of: close) else { break }
            out.append(body[..<c.lowerBound])
            rest = body[c.upperBound...]
        }
        return out
    }

    static func decode(_ s: Substring) -> String {
        guard s.contains("&") else { return String(s) }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == "&", let semi = s[i...].firstIndex(of: ";"), s.distance(from: i, to: semi) <= 10 {
                let name = s[s.index(after: i)..<semi]
                var replacement: String?
                switch name {
                case "amp": replacement = "&"
                case "lt": replacement = "<"
                case "gt": replacement = ">"
                case "quot": replacement = "\""
                case "apos": replacement = "'"
                default:
                    if name.hasPrefix("#x"), let v = UInt32(name.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) {
                        replacement = String(Character(u))
                    } else if name.hasPrefix("#"), let v = UInt32(name.dropFirst()), let u = Unicode.Scalar(v) {
                        replacement = String(Character(u))
                    }
                }
                if let replacement {
                    out += replacement
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(c)
            i = s.index(after: i)
        }
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }
}
