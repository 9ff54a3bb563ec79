import Foundation
import Planner
import Storage
import WALFormat

/// CREATE TABLESPACE in the WAL a recovery replays (docs/drills.md, docs/recovery.md): PostgreSQL's
/// replay creates the tablespace at the location the record names, whatever `--tablespace-mapping`
/// did for the backup's own tablespaces; on the database host that can be a live server's. `walctl
/// drill` refuses to start its server over such WAL; `walctl recover` warns before the server is started.
public enum WALTablespaceCheck {
    /// The first CREATE TABLESPACE record in the WAL `plan` replays, and the segment it starts in:
    /// each planned segment is read from the repository into memory (`ObjectReader.read`: checked as
    /// archive-get checks it) and scanned, with the next segment of its run for a record that crosses
    /// into it. A time target ends the scan at the first commit or abort after it, an LSN target
    /// ignores records after it; other targets (and nil) count every record of the planned segments
    /// (a record after the stop in its last segment counts too: safe, and rare).
    public static func firstCreation(plan: RecoveryPlan, target: RecoveryTarget?, repository: Repository) throws -> (String, TablespaceCreation)? {
        guard let info = try storeCall({ try repository.info() }), let size = info.segmentSize else {
            throw WalctlError.refused("cannot read the segment size from \(repository.url)'s \(RepositoryLayout.infoKey)")
        }
        let reader = ObjectReader(repository: repository)
        func load(_ name: String) throws -> [UInt8] {
            guard let file = WALFileName(name), let meta = try storeCall({ try repository.meta(for: file) }) else {
                throw WalctlError.refused("segment \(name) of the plan is not in \(repository.url)")
            }
            guard meta.size == Int64(size.bytes) else {
                throw WalctlError.checksumMismatch(name: name, expected: meta.crc32c, actual: "n/a", size: meta.size, expectedSize: Int64(size.bytes))
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(size.bytes))
            try reader.read(meta) { chunk in
                // Never more than the meta's size (the read's own check comes at the end).
                guard bytes.count + chunk.count <= Int(meta.size) else {
                    throw WalctlError.checksumMismatch(name: name, expected: meta.crc32c, actual: "n/a",
                                                       size: Int64(bytes.count + chunk.count), expectedSize: meta.size)
                }
                bytes.append(contentsOf: chunk)
            }
            return bytes
        }
        var stopAfter: PGTimestamp?
        if case .time(let t) = target { stopAfter = t }
        for range in plan.segmentRanges {
            let names = (range.firstSegno...range.lastSegno).map { SegmentID(timeline: range.timeline, segno: $0).fileName(size: size) }
            var current = try load(names[0])
            for i in names.indices {
                let next: [UInt8]? = i + 1 < names.count ? try load(names[i + 1]) : nil
                let found = try current.withUnsafeBytes { c in
                    try (next ?? []).withUnsafeBytes { n in
                        try SegmentSummary.tablespaceCreations(c, segmentSize: size, following: next == nil ? nil : n, stopAfter: stopAfter)
                    }
                }
                let replayed = found.creations.filter { c in
                    if case .lsn(let l) = target { return c.lsn <= l }
                    return true
                }
                if let first = replayed.first { return (names[i], first) }
                if found.stopped { return nil }
                if let next { current = next }
            }
        }
        return nil
    }
}

/// A value computed on another thread; `wait` blocks until it is there (then returns it at once).
final class BackgroundResult<T>: @unchecked Sendable {
    private let group = DispatchGroup()
    private var result: Result<T, Error>?

    init(_ body: @escaping () throws -> T) {
        group.enter()
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = Result { try body() }
            self.group.leave()
        }
    }

    func wait() -> Result<T, Error> {
        group.wait()
        return result!
    }
}
