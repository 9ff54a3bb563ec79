import Foundation
import WALFormat

/// A safety-valve decision (docs/async.md): the file was reported archived to PostgreSQL WITHOUT
/// being stored, so point-in-time recovery is broken across it.
///
/// Kept twice: in the archive spool (`<spool>/archive/skipped/<name>.json`, written first, since the
/// repository may be what is down) and as the repository's marker object
/// `RepositoryLayout.skipMarkerKey(name)`, from which `walctl catalog rebuild` restores the gap.
public struct SkipRecord: Codable, Equatable, Sendable {
    /// The PostgreSQL file name that was let go.
    public var name: String
    /// Why the valve fired, in words (the limit that was passed).
    public var reason: String
    public var skippedAt: PGTimestamp
    /// Bytes of the file that was not stored.
    public var size: Int64
    /// Set once the marker object is in the repository.
    public var markerStored: Bool

    public init(name: String, reason: String, skippedAt: PGTimestamp, size: Int64, markerStored: Bool) {
        self.name = name; self.reason = reason; self.skippedAt = skippedAt; self.size = size; self.markerStored = markerStored
    }

    /// Decodes a marker object's JSON; `key` names it in the error.
    public static func decode(_ bytes: [UInt8], key: String) throws -> SkipRecord {
        do {
            return try JSONDecoder().decode(SkipRecord.self, from: Data(bytes))
        } catch {
            throw StoreError.configuration("safety valve marker \(key) is unreadable: \(error)")
        }
    }
}
