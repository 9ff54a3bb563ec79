import Benchmark
import Codec
import Foundation
import WALFormat

// WAL segment scan (SegmentSummary.scan) with and without CRC checks, next to zstd level 3 compression
// of the same segment, which archive-push does anyway. Goal: scan with CRC < 10% of the zstd time.
//
// Segments: WALCTL_BENCH_SEGMENT names one segment file, or a directory whose *.wal files are all
// measured (scripts/make-bench-segment.sh writes oltp.wal and bulk.wal from a real PostgreSQL 15
// pgbench run). Default: /tmp/walctl-bench. Throughput in MB/s = 16.78 MB / median wall-clock time.

struct BenchSegment {
    var label: String
    var bytes: [UInt8]
    var size: WALSegmentSize
}

func loadSegments() -> [BenchSegment] {
    let path = ProcessInfo.processInfo.environment["WALCTL_BENCH_SEGMENT"] ?? "/tmp/walctl-bench"
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        FileHandle.standardError.write(Data(("WALScan: no segment at \(path): run scripts/make-bench-segment.sh " +
            "and set WALCTL_BENCH_SEGMENT\n").utf8))
        return []
    }
    let files: [String]
    if isDir.boolValue {
        files = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { $0.hasSuffix(".wal") }.sorted().map { path + "/" + $0 }
    } else {
        files = [path]
    }
    return files.compactMap { f in
        guard let d = FileManager.default.contents(atPath: f), let size = WALSegmentSize(bytes: UInt64(d.count)) else {
            FileHandle.standardError.write(Data("WALScan: \(f) is not a WAL segment (size)\n".utf8))
            return nil
        }
        let label = URL(fileURLWithPath: f).deletingPathExtension().lastPathComponent
        return BenchSegment(label: label, bytes: [UInt8](d), size: size)
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal], timeUnits: .microseconds,
                                           maxDuration: .seconds(5), maxIterations: 1000)
    for seg in loadSegments() {
        // Print the summary once, so the numbers can be tied to the segment's content.
        if let s = try? seg.bytes.withUnsafeBytes({ try SegmentSummary.scan($0, segmentSize: seg.size) }) {
            FileHandle.standardError.write(Data(("WALScan \(seg.label): \(s.records) records, \(s.commits) commits, " +
                "\(s.crcFailures) CRC failures, startsInsideRecord=\(s.startsInsideRecord ?? false), " +
                "continuesIntoNext=\(s.continuesIntoNext)\n").utf8))
        }
        Benchmark("scan+crc \(seg.label)") { benchmark in
            for _ in benchmark.scaledIterations {
                seg.bytes.withUnsafeBytes { blackHole(try? SegmentSummary.scan($0, segmentSize: seg.size)) }
            }
        }
        Benchmark("scan-nocrc \(seg.label)") { benchmark in
            for _ in benchmark.scaledIterations {
                seg.bytes.withUnsafeBytes { blackHole(try? SegmentSummary.scan($0, segmentSize: seg.size, verifyCRC: false)) }
            }
        }
        Benchmark("crc32c-only \(seg.label)") { benchmark in
            for _ in benchmark.scaledIterations {
                seg.bytes.withUnsafeBytes { blackHole(CRC32C.checksum($0)) }
            }
        }
        Benchmark("zstd-3 \(seg.label)") { benchmark in
            for _ in benchmark.scaledIterations {
                var out = 0
                do {
                    let c = try CodecKind.zstd.makeCompressor(level: 3, pledgedSize: UInt64(seg.bytes.count))
                    try seg.bytes.withUnsafeBytes { try c.update($0) { out += $0.count } }
                    try c.finish { out += $0.count }
                } catch {
                    FileHandle.standardError.write(Data("WALScan: zstd failed: \(error)\n".utf8))
                }
                blackHole(out)
            }
        }
    }
}
