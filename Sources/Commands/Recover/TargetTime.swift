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
}
