import Foundation
import Storage
import WALFormat

/// The one JSON encoder of every `--json` (docs/json.md): pretty printed, sorted keys, no escaped
/// slashes. The values follow one vocabulary, kept by the types themselves: times are ISO 8601 in UTC
/// with microseconds (`PGTimestamp`, and any `Date` through this encoder), LSNs `X/Y` strings, CRCs
/// 8 lower-case hex digits, sizes in bytes (integers), a count is `...Count`, a list is plural.
/// Every document is one object with `formatVersion`.
public enum JSONOutput {
    /// The encoder itself (for callers that need `Data`).
    public static func encoder() -> JSONEncoder {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(PGTimestamp(date: date).iso8601)
        }
        return enc
    }

    /// One document, as text.
    public static func render<T: Encodable>(_ value: T) throws -> String {
        do {
            return String(decoding: try encoder().encode(value), as: UTF8.self)
        } catch {
            throw WalctlError.refused("cannot encode the JSON output: \(error)")
        }
    }

    /// A CRC-32C as printed everywhere: 8 lower-case hex digits.
    public static func crc(_ value: UInt32) -> String { ArchivedFileMeta.hex(value) }
}
