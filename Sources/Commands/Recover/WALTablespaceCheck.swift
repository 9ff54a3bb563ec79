import Foundation
import LocalFS
import Planner
import Storage
import WALFormat

/// CREATE TABLESPACE in the WAL a recovery replays (docs/drills.md, docs/recovery.md): PostgreSQL's
/// replay creates the tablespace at the location the record names, whatever `--tablespace-mapping`
/// did for the backup's own tablespaces; on the database host that can be a live server's. `walctl
/// drill` refuses to start its server over such WAL; `walctl recover` warns before the server is started.
public enum WALTablespaceCheck {
    /// The first CREATE TABLESPACE record in the WAL `plan` replays, and the segment it starts in:
    /// each planned segment is read from the repository (checked as archive-get checks it) into a
    /// directory under `scratch` and scanned, with the next segment of its run for a record that
    /// crosses into it. A time target ends the scan at the first commit or abort after it, an LSN
    /// target ignores records after it; other targets (and nil) count every record of the planned
    /// segments (a record after the stop in its last segment counts too: safe, and rare).
    public static func firstCreation(plan: RecoveryPlan, target: RecoveryTarget?, repository: Repository, scratch: String) throws -> (String, TablespaceCreation)? {
        guard let info = try storeCall({ try repository.info() }), let size = info.segmentSize else {
            throw WalctlError.refused("cannot read the segment size from \(repository.url)'s \(RepositoryLayout.infoKey)")
        }
        let dir = scratch + "/walcheck"
        do { try LocalFS.makePrivateDirectory(dir, what: "WAL check directory") } catch { throw WalctlError(error) }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func load(_ name: String) throws -> [UInt8] {
            guard let file = WALFileName(name), let meta = try storeCall({ try repository.meta(for: file) }) else {
                throw WalctlError.refused("segment \(name) of the plan is not in \(repository.url)")
            }
            let path = dir + "/" + name
            let out = try AtomicFile(path: path, durable: false)
            do { try ObjectReader(repository: repository).restore(meta, to: out); try out.commit() } catch { out.abort(); throw error }
            defer { unlink(path) }
            do {
                guard let bytes = try LocalFS.readFile(path, limit: Int(size.bytes)) else { throw WalctlError.refused("\(path) vanished") }
                return bytes
            } catch let e as LocalFSError { throw WalctlError(e) }
        }
        for range in plan.segmentRanges {
            let names = (range.firstSegno...range.lastSegno).map { SegmentID(timeline: range.timeline, segno: $0).fileName(size: size) }
            var current = try load(names[0])
            for i in names.indices {
                let next: [UInt8]? = i + 1 < names.count ? try load(names[i + 1]) : nil
                var stopAfter: PGTimestamp?
                if case .time(let t) = target { stopAfter = t }
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
