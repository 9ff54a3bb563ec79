import Catalog
import Foundation
import Planner
import Storage
import Testing
import WALFormat

/// Builds, on request, the synthetic 1,000,001-segment archive of `Benchmarks/Benchmarks/Catalog`
/// (same shape: timeline 1 segments 1...400,000; timeline 2 forks at 380,000 (mid-segment) up to
/// 730,000; timeline 3 forks from 2 at 700,000 up to 999,999 minus every 50,000th; segment k holds
/// commits from k*10 s to k*10+8 s after 2020-01-01; a backup every 40,000 segments from 20,000),
/// as a file repository plus a complete catalog, so `walctl recover --dry-run` can be timed on it:
///
///     WALCTL_PLAN_BENCH_DIR=/tmp/plan-bench swift test --filter millionSegmentArchive
///
/// then `walctl recover --repository file:///tmp/plan-bench/repo --catalog /tmp/plan-bench/catalog.db ...`.
@Test(.enabled(if: ProcessInfo.processInfo.environment["WALCTL_PLAN_BENCH_DIR"] != nil))
func millionSegmentArchive() throws {
    let dir = ProcessInfo.processInfo.environment["WALCTL_PLAN_BENCH_DIR"]!
    let size = WALSegmentSize.default
    let t0 = PGTimestamp(unixSeconds: 1_577_836_800)
    func t(_ s: Int64) -> PGTimestamp { PGTimestamp(microseconds: t0.microseconds + s * 1_000_000) }
    try FileManager.default.createDirectory(atPath: dir + "/repo", withIntermediateDirectories: true)
    let store = FileStore(root: dir + "/repo")
    let repo = Repository(store: store, url: store.location)
    try repo.bind(RepositoryInfo(systemIdentifier: 1, walSegmentSize: size.bytes, pgVersion: 150000, createdAt: t(0)))
    let c = try Catalog(path: dir + "/catalog.db", repositoryURL: repo.url, segmentSize: size, systemIdentifier: "1")
    if try c.isComplete() { return }
    func meta(_ tl: TimeLineID, _ k: UInt64) -> ArchivedFileMeta {
        var s = SegmentSummary()
        s.commits = 500; s.aborts = 3
        s.firstCommitTime = t(Int64(k) * 10); s.lastCommitTime = t(Int64(k) * 10 + 8)
        s.firstXactTime = s.firstCommitTime; s.lastXactTime = s.lastCommitTime
        s.firstLSN = LSN.start(of: k, size: size) + 40; s.lastLSN = LSN.start(of: k, size: size) + 16_000_000
        if k % 10_000 == 0 { s.restorePoints = [RestorePoint(name: "rp-\(tl)-\(k)", time: t(Int64(k) * 10 + 4), lsn: LSN.start(of: k, size: size) + 4096)] }
        return ArchivedFileMeta(name: SegmentID(timeline: tl, segno: k).fileName(size: size), size: Int64(size.bytes),
                                storedSize: 3_000_000, codec: "zstd", crc32c: UInt32(truncatingIfNeeded: k &* 2654435761),
                                archivedAt: t(Int64(k) * 10 + 9), summary: s)
    }
    var all: [(TimeLineID, UInt64)] = []
    for k: UInt64 in 1...400_000 { all.append((1, k)) }
    for k: UInt64 in 380_000...730_000 { all.append((2, k)) }
    for k: UInt64 in 700_000...999_999 where k % 50_000 != 0 { all.append((3, k)) }
    var i = 0
    while i < all.count {
        try c.recordArchived(all[i..<min(all.count, i + 100_000)].map { meta($0.0, $0.1) })
        i += 100_000
    }
    let h2 = TimelineHistory(timeline: 2, entries: [.init(timeline: 1, switchPoint: LSN.start(of: 380_000, size: size) + 0x2000, reason: "bench")])
    let h3 = TimelineHistory(timeline: 3, entries: h2.entries + [.init(timeline: 2, switchPoint: LSN.start(of: 700_000, size: size), reason: "bench")])
    try c.recordHistory(h2); try c.recordHistory(h3)
    for (n, k) in stride(from: UInt64(20_000), to: 1_000_000, by: 40_000).enumerated() {
        let tl: TimeLineID = k < 380_000 ? 1 : k < 700_000 ? 2 : 3
        try c.recordBackup(BackupRecord(label: "b\(n)", startLSN: LSN.start(of: k, size: size) + 40, stopLSN: LSN.start(of: k + 2, size: size),
                                        startTime: t(Int64(k) * 10), stopTime: t(Int64(k + 2) * 10), timeline: tl, size: 1 << 40,
                                        storedSize: 1 << 38, status: .complete, pgVersion: 150000, systemIdentifier: "1"))
    }
    try c.markComplete()
    // The plans timed in docs/benchmarks.md.
    let p = try RecoveryPlanner.plan(RecoveryRequest(target: .time(t(9_450_005))), catalog: c)
    #expect(p.plan?.segmentCount == 5_001)
    #expect(try RecoveryPlanner.plan(RecoveryRequest(target: .time(t(9_550_005))), catalog: c).refusal?.reason == .gap)
}
