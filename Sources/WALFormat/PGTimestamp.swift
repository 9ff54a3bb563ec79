import Foundation

/// PostgreSQL's `TimestampTz`: microseconds since 2000-01-01 00:00:00 UTC.
///
/// Encoded in JSON and printed as ISO 8601 with an explicit offset and microseconds,
/// `2026-11-26T03:47:02.115455+00:00`.
public struct PGTimestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var microseconds: Int64
    public init(microseconds: Int64) { self.microseconds = microseconds }

    /// Seconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
    public static let unixEpochOffset: Int64 = 946_684_800

    public init(unixSeconds: Int64) { microseconds = (unixSeconds - Self.unixEpochOffset) * 1_000_000 }
    public init(date: Date) {
        microseconds = Int64(((date.timeIntervalSince1970 - Double(Self.unixEpochOffset)) * 1_000_000).rounded())
    }
    public var date: Date { Date(timeIntervalSince1970: Double(microseconds) / 1_000_000 + Double(Self.unixEpochOffset)) }
    public var unixMicroseconds: Int64 { microseconds + Self.unixEpochOffset * 1_000_000 }

    public static func < (a: PGTimestamp, b: PGTimestamp) -> Bool { a.microseconds < b.microseconds }

    /// ISO 8601 in UTC with microseconds: `2026-11-26T03:47:02.115455+00:00`.
    public var iso8601: String { format(separator: "T", offset: "+00:00") }
    /// The form PostgreSQL reads back without any time-zone guessing: `2026-11-26 03:47:02.115455+00`.
    public var postgresLiteral: String { format(separator: " ", offset: "+00") }
    public var description: String { iso8601 }

    private func format(separator: String, offset: String) -> String {
        let us = unixMicroseconds
        var secs = us / 1_000_000
        var frac = us % 1_000_000
        if frac < 0 { frac += 1_000_000; secs -= 1 }
        var t = time_t(secs)
        var tm = tm()
        gmtime_r(&t, &tm)
        func p(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        let f = String(frac)
        return p(tm.tm_year + 1900, 4) + "-" + p(tm.tm_mon + 1, 2) + "-" + p(tm.tm_mday, 2) + separator +
            p(tm.tm_hour, 2) + ":" + p(tm.tm_min, 2) + ":" + p(tm.tm_sec, 2) + "." +
            String(repeating: "0", count: 6 - f.count) + f + offset
    }

    /// Parses a timestamp with an explicit zone: ISO 8601 (`2026-11-26T03:48:18.5+00:00`, `...Z`) or
    /// PostgreSQL's output (`2026-11-26 03:48:18.888957+00`, `... UTC`). A time without a zone is
    /// refused (returns nil) unless `defaultOffsetSeconds` is given: walctl never guesses a zone.
    public init?(parsing text: String, defaultOffsetSeconds: Int? = nil) {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        func digits(_ n: Int) -> Int? {
            guard s.count >= n else { return nil }
            let d = s.prefix(n)
            guard d.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            s = s.dropFirst(n)
            return Int(d)
        }
        func expect(_ c: Character) -> Bool { if s.first == c { s.removeFirst(); return true }; return false }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2) else { return nil }
        guard expect("T") || expect(" ") || expect("t") else { return nil }
        guard let hour = digits(2), expect(":"), let minute = digits(2) else { return nil }
        var second = 0, micros = 0
        if expect(":") {
            guard let sec = digits(2) else { return nil }
            second = sec
            if expect(".") {
                var frac = ""
                while let c = s.first, c.isASCII, c.isNumber { frac.append(c); s.removeFirst() }
                guard !frac.isEmpty else { return nil }
                let six = String((frac + "000000").prefix(6))
                micros = Int(six) ?? 0
            }
        }
        s = s.drop(while: { $0 == " " })
        var offset: Int
        if s.isEmpty {
            guard let d = defaultOffsetSeconds else { return nil }
            offset = d
        } else if s == "Z" || s == "z" || s == "UTC" || s == "utc" || s == "GMT" {
            offset = 0
        } else if let sign = s.first, sign == "+" || sign == "-" {
            s.removeFirst()
            guard let oh = digits(2) else { return nil }
            var om = 0
            if expect(":") { guard let m = digits(2) else { return nil }; om = m } else if let m = digits(2) { om = m }
            guard s.isEmpty else { return nil }
            offset = (oh * 3600 + om * 60) * (sign == "-" ? -1 : 1)
        } else {
            return nil
        }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var tm = tm()
        tm.tm_year = Int32(year - 1900); tm.tm_mon = Int32(month - 1); tm.tm_mday = Int32(day)
        tm.tm_hour = Int32(hour); tm.tm_min = Int32(minute); tm.tm_sec = Int32(second)
        let unix = Int64(timegm(&tm)) - Int64(offset)
        microseconds = (unix - Self.unixEpochOffset) * 1_000_000 + Int64(micros)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let t = PGTimestamp(parsing: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad timestamp \(s)")
        }
        self = t
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(iso8601)
    }
}
