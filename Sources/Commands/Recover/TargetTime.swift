import Foundation
import WALFormat

/// Reading the operator's `--to TIME`: a zone is required, either in the text or named with
/// `--time-zone`; walctl never guesses one (pg-facts §6: PostgreSQL would read a bare time in the
/// *server's* zone, which is how a recovery lands an hour off).
public enum TargetTime {
    /// Parses `text` (ISO 8601 or PostgreSQL output, see `PGTimestamp(parsing:)`). A time without a
    /// zone is read in `zone` (an IANA name such as `Europe/Berlin`, `UTC`, or an offset `+02:00`),
    /// at the offset that zone had at that local time.
    ///
    /// - Throws: `WalctlError.refused` when the text is not a time, has no zone and none is named,
    ///   or the zone is unknown.
    public static func parse(_ text: String, zone: String?) throws -> PGTimestamp {
        // PostgreSQL refuses these; a lenient parser would normalise them (Nov 31 -> Dec 1, +99 h).
        if let why = impossibility(text) { throw WalctlError.refused("\"\(text)\" is not a valid time: \(why)") }
        if let zone, let why = offsetImpossibility(zone) { throw WalctlError.refused("--time-zone \"\(zone)\" is not a valid offset: \(why)") }
        if let t = PGTimestamp(parsing: text) { return t }
        guard PGTimestamp(parsing: text, defaultOffsetSeconds: 0) != nil else {
            throw WalctlError.refused("\"\(text)\" is not a time: use ISO 8601 or PostgreSQL's form with a zone, e.g. 2026-11-26 03:48:18.5+00 or 2026-11-26T04:48:18+01:00")
        }
        guard let zone else {
            throw WalctlError.refused("\"\(text)\" has no time zone: add one (+00, +01:00, Z) or name the zone with --time-zone (e.g. --time-zone UTC or --time-zone Europe/Berlin); walctl never guesses")
        }
        let offset = try offsetSeconds(zone: zone, localTime: text)
        guard let t = PGTimestamp(parsing: text, defaultOffsetSeconds: offset) else {
            throw WalctlError.refused("\"\(text)\" is not a time")
        }
        return t
    }

    /// The UTC offset of `zone` at the local wall-clock time `localTime` (zone-less text).
    static func offsetSeconds(zone: String, localTime: String) throws -> Int {
        if let t = PGTimestamp(parsing: "2000-01-01 00:00:00" + zone) { return -Int(t.microseconds / 1_000_000) }
        guard let tz = TimeZone(identifier: zone), let naive = PGTimestamp(parsing: localTime, defaultOffsetSeconds: 0) else {
            throw WalctlError.refused("unknown time zone \"\(zone)\": use an IANA name (UTC, Europe/Berlin, America/New_York) or an offset (+02:00)")
        }
        // The wall-clock reading as if it were UTC, shifted by the zone's offset at that instant (twice,
        // so a time near a DST change uses the offset in force at the resulting instant).
        let first = tz.secondsFromGMT(for: naive.date)
        let second = tz.secondsFromGMT(for: naive.date.addingTimeInterval(-Double(first)))
        return second
    }

    /// Why `text` cannot be a time even though its shape is right: a day the month does not have, a
    /// month or hour out of range, a UTC offset beyond ±15:59. nil when nothing is wrong (or the
    /// shape is not recognised: the parser reports that).
    public static func impossibility(_ text: String) -> String? {
        let u = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        func number(_ r: Range<Int>) -> Int? {
            guard r.upperBound <= u.count, u[r].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int(String(decoding: u[r], as: UTF8.self))
        }
        guard u.count >= 10, u[4] == 0x2D, u[7] == 0x2D, let year = number(0..<4), let month = number(5..<7), let day = number(8..<10) else { return nil }
        guard (1...12).contains(month) else { return "month \(month) does not exist" }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else {
            return "\(String(format: "%04d-%02d", year, month)) has no day \(day) (it has \(days) days)"
        }
        if let h = number(11..<13), u.count > 13, u[13] == 0x3A {
            guard h < 24 else { return "hour \(h) does not exist" }
            if let m = number(14..<16), m >= 60 { return "minute \(m) does not exist" }
            if u.count >= 19, u[16] == 0x3A, let sec = number(17..<19), sec >= 61 { return "second \(sec) does not exist" }
        }
        // The zone: the last + or - after the time of day.
        guard u.count > 13, let signAt = u[13...].lastIndex(where: { $0 == 0x2B || $0 == 0x2D }) else { return nil }
        return offsetImpossibility(String(decoding: u[signAt...], as: UTF8.self))
    }

    /// Why an offset `+HH`, `+HHMM` or `+HH:MM` is out of range (beyond ±15:59, as PostgreSQL);
    /// nil when it is fine or not an offset at all.
    public static func offsetImpossibility(_ zone: String) -> String? {
        let u = Array(zone.trimmingCharacters(in: .whitespaces).utf8)
        guard let sign = u.first, sign == 0x2B || sign == 0x2D else { return nil }
        let digits = u.dropFirst().filter { $0 != 0x3A }
        guard !digits.isEmpty, digits.count <= 4, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let text = String(decoding: digits, as: UTF8.self)
        let hours = Int(text.prefix(digits.count <= 2 ? digits.count : 2)) ?? 0
        let minutes = digits.count > 2 ? Int(text.dropFirst(2)) ?? 0 : 0
        if minutes >= 60 { return "offset minutes \(minutes) are not below 60" }
        if hours > 15 { return "UTC offset \(String(decoding: u, as: UTF8.self)) is beyond ±15:59" }
        return nil
    }
}
