import Benchmark
import Catalog
import Foundation
import Storage
import WALFormat

// A synthetic catalog of 1,000,001 segments (16 MiB: ~16 TB of WAL) on 3 timelines:
//   timeline 1: segments 1 ... 400,000
//   timeline 2: forks from 1 at segment 380,000 (mid-segment); segments 380,000 ... 730,000
//   timeline 3: forks from 2 at segment 700,000; segments 700,000 ... 999,999 minus every 50,000th (gaps)
// Each segment k holds commits from k*10 s to k*10+8 s after 2020-01-01; a restore point every 10,000.

let size = WALSegmentSize.default
let t0 = PGTimestamp(unixSeconds: 1_577_836_800)
func t(_ s: Int64) -> PGTimestamp { PGTimestamp(microseconds: t0.microseconds + s * 1_000_000) }
let workDir = ProcessInfo.processInfo.environment["WALCTL_BENCH_DIR"] ?? NSTemporaryDirectory() + "walctl-catalog-bench"
let bigPath = workDir + "/catalog-1e6.db"
let repoURL = "file:///bench/repo"
let h2 = TimelineHistory(timeline: 2, entries: [.init(timeline: 1, switchPoint: LSN.start(of: 380_000, size: size) + 0x2000, reason: "bench")])
let h3 = TimelineHistory(timeline: 3, entries: h2.entries + [.init(timeline: 2, switchPoint: LSN.start(of: 700_000, size: size), reason: "bench")])

func meta(_ tl: TimeLineID, _ k: UInt64, archivedOffset: Int64 = 0) -> ArchivedFileMeta {
    var s = SegmentSummary()
    s.commits = 500; s.aborts = 3
    s.firstCommitTime = t(Int64(k) * 10); s.lastCommitTime = t(Int64(k) * 10 + 8)
    s.firstXactTime = s.firstCommitTime; s.lastXactTime = s.lastCommitTime
    s.firstLSN = LSN.start(of: k, size: size) + 40; s.lastLSN = LSN.start(of: k, size: size) + 16_000_000
    if k % 10_000 == 0 { s.restorePoints = [RestorePoint(name: "rp-\(tl)-\(k)", time: t(Int64(k) * 10 + 4), lsn: LSN.start(of: k, size: size) + 4096)] }
    return ArchivedFileMeta(name: SegmentID(timeline: tl, segno: k).fileName(size: size), size: Int64(size.bytes),
                            storedSize: 3_000_000, codec: "zstd", crc32c: UInt32(truncatingIfNeeded: k &* 2654435761),
                            archivedAt: t(Int64(k) * 10 + 9 + archivedOffset), summary: s)
}

func bigSegments() -> [(TimeLineID, UInt64)] {
    var out: [(TimeLineID, UInt64)] = []
    out.reserveCapacity(1_000_001)
    for k: UInt64 in 1...400_000 { out.append((1, k)) }
    for k: UInt64 in 380_000...730_000 { out.append((2, k)) }
    for k: UInt64 in 700_000...999_999 where k % 50_000 != 0 { out.append((3, k)) }
    return out
}

/// Builds the 10^6 catalog once (kept in workDir between runs): one transaction per 100,000 rows.
func bigCatalog() throws -> Catalog {
    try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
    let existed = FileManager.default.fileExists(atPath: bigPath)
    let c = try Catalog(path: bigPath, repositoryURL: repoURL, segmentSize: size)
    if existed, try c.isComplete() { return c }
    let started = Date()
    let all = bigSegments()
    var i = 0
    while i < all.count {
        try c.recordArchived(all[i..<min(all.count, i + 100_000)].map { meta($0.0, $0.1) })
        i += 100_000
    }
    try c.recordHistory(h2); try c.recordHistory(h3)
    for (n, k) in stride(from: UInt64(20_000), to: 1_000_000, by: 40_000).enumerated() {
        let tl: TimeLineID = k < 380_000 ? 1 : k < 700_000 ? 2 : 3
        try c.recordBackup(BackupRecord(label: "b\(n)", startLSN: LSN.start(of: k, size: size) + 40, stopLSN: LSN.start(of: k + 2, size: size),
                                        startTime: t(Int64(k) * 10), stopTime: t(Int64(k + 2) * 10), timeline: tl, size: 1 << 40,
                                        status: .complete, pgVersion: 150000, systemIdentifier: "1"))
    }
    try c.markComplete()
    print("built the 10^6-segment catalog in \(Date().timeIntervalSince(started)) s")
    return c
}

/// A FileStore repository with 100,000 segment metas (written without fsync: setup only).
func rebuildRepository() throws -> Repository {
    let root = workDir + "/repo-1e5"
    let store = FileStore(root: root)
    let repo = Repository(store: store, url: store.location)
    if FileManager.default.fileExists(atPath: root + "/done") { return repo }
    for k: UInt64 in 1...100_000 {
        let m = meta(1, k)
        let name = WALFileName.segment(m.name)
        let dir = root + "/" + RepositoryLayout.directory(for: name)
        if k == 1 || k % size.segmentsPerXLogID == 0 { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try Data(try Repository.encodeMeta(m)).write(to: URL(fileURLWithPath: root + "/" + RepositoryLayout.metaKey(name)))
        try Data([1]).write(to: URL(fileURLWithPath: dir + "/" + m.name + "." + m.crc32c + ".zst"))
    }
    FileManager.default.createFile(atPath: root + "/done", contents: nil)
    return repo
}

/// One connection opened once: the in-process query benchmarks measure a warm connection, as the
/// planner and `info` use one (a fresh connection first parses the schema: that cost is in the
/// archive-push benchmark, which opens one per iteration).
nonisolated(unsafe) let shared: Catalog? = try? bigCatalog()
func warm() throws -> Catalog {
    guard let c = shared else { return try bigCatalog() }
    return c
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock], timeUnits: .microseconds,
                                           maxDuration: .seconds(5), maxIterations: 200_000)

    Benchmark("time-to-segment (10^6 segments, 3-timeline path)") { benchmark in
        let c = try warm()
        let path = h3.path
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let target = t(Int64.random(in: 10...9_999_000))
            blackHole(try c.firstSegment(reaching: target, on: path))
        }
    }

    Benchmark("gap check (10^6 segments, backup start to end of timeline 3)") { benchmark in
        let c = try warm()
        let path = h3.path
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let from = UInt64.random(in: 1...990_000)
            blackHole(try c.gaps(from: from, to: 999_999, on: path))
        }
    }

    Benchmark("segment by name (10^6)") { benchmark in
        let c = try warm()
        let names = (0..<1000).map { _ in SegmentID(timeline: 2, segno: UInt64.random(in: 380_000...730_000)).fileName(size: size) }
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations { blackHole(try c.segment(named: names[i % names.count])) }
    }

    Benchmark("segment holding an LSN (10^6)") { benchmark in
        let c = try warm()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try c.segment(containing: LSN(UInt64.random(in: 1...399_999) * size.bytes + 77), timeline: 1))
        }
    }

    Benchmark("newest backup before T (10^6)") { benchmark in
        let c = try warm()
        let path = h3.path
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try c.newestBackup(stoppedAtOrBefore: t(Int64.random(in: 10...9_999_000)), on: path)) }
    }

    Benchmark("restore point by name (10^6)") { benchmark in
        let c = try warm()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try c.restorePoints(named: "rp-1-\(UInt64.random(in: 1...39) * 10_000)")) }
    }

    Benchmark("info (10^6): counts, ranges, gaps, windows, last segment", configuration: .init(maxIterations: 2_000)) { benchmark in
        let c = try warm()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try c.info()) }
    }

    for durability in [Catalog.Durability.normal, .full] {
        Benchmark("archive-push insert: open + insert + close, 10^6 catalog, synchronous=\(durability.rawValue)",
                  configuration: .init(timeUnits: .microseconds, maxDuration: .seconds(5), maxIterations: 2_000)) { benchmark in
            // Append at the end of timeline 3, as archive-push does (no artificial gaps).
            let start = (try warm().archivedRanges(timeline: 3).last?.lastSegno ?? 999_999) + 1
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                let c = try Catalog(path: bigPath, repositoryURL: repoURL, segmentSize: size, durability: durability)
                try c.recordArchived(meta(3, start + UInt64(i)))
            }
        }
    }

    Benchmark("rebuild 10^5 segments from a FileStore", configuration: .init(timeUnits: .milliseconds, maxDuration: .seconds(60), maxIterations: 3)) { benchmark in
        let repo = try rebuildRepository()
        let c = try Catalog(path: workDir + "/rebuild.db", repositoryURL: repo.url, segmentSize: size)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let r = try c.rebuild(from: repo)
            precondition(r.segments == 100_000, "rebuilt \(r.segments)")
        }
    }
}
