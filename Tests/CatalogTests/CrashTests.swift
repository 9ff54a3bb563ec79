import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

/// Environment variables that turn `crashChildWriter` into the writer process of the crash test.
private let childDBEnv = "WALCTL_CATALOG_CRASH_DB"
private let childLogEnv = "WALCTL_CATALOG_CRASH_LOG"
private let childStartEnv = "WALCTL_CATALOG_CRASH_START"

@Suite struct ConcurrencyAndCrashTests {
    /// One writer thread and three reader threads, each with its own connection: readers never
    /// fail (no SQLITE_BUSY escapes) and always see a consistent snapshot (ranges match counts).
    @Test func oneWriterSeveralReaders() throws {
        let d = tempDir()
        let path = d + "/c.db"
        _ = try Catalog(path: path, repositoryURL: "r", segmentSize: seg16)
        let total: UInt64 = 400
        let group = DispatchGroup()
        let failures = Failures()
        DispatchQueue.global().async(group: group) {
            do {
                let w = try Catalog(path: path, repositoryURL: "r", segmentSize: seg16)
                for k in 1...total { try w.recordArchived(segmentMeta(1, k, first: Int64(k) * 10, last: Int64(k) * 10 + 5)) }
            } catch { failures.add("writer: \(error)") }
        }
        for r in 0..<3 {
            DispatchQueue.global().async(group: group) {
                do {
                    let c = try Catalog(path: path, repositoryURL: "r", segmentSize: seg16)
                    var seen: Int64 = 0
                    while seen < Int64(total) {
                        let info = try c.info()
                        let inRanges = info.timelines.reduce(Int64(0)) { $0 + $1.ranges.reduce(Int64(0)) { $0 + Int64($1.count) } }
                        if inRanges != info.counts.segments { failures.add("reader \(r): ranges \(inRanges) != count \(info.counts.segments)") }
                        if info.counts.segments < seen { failures.add("reader \(r): went backwards") }
                        seen = info.counts.segments
                        if seen > 0, try c.firstSegment(reaching: at(0), on: c.path(to: 1))?.segno != 1 { failures.add("reader \(r): first segment") }
                    }
                } catch { failures.add("reader \(r): \(error)") }
            }
        }
        #expect(group.wait(timeout: .now() + 120) == .success)
        #expect(failures.all.isEmpty, "\(failures.all.prefix(5))")
    }

    /// The writer half of `killedWriterLosesNothing`: does nothing unless started by it.
    @Test func crashChildWriter() throws {
        let env = ProcessInfo.processInfo.environment
        guard let db = env[childDBEnv], let log = env[childLogEnv], let start = env[childStartEnv].flatMap(UInt64.init) else { return }
        let fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        var k = start
        while true {
            // One process per segment, as archive-push does: open, record, close.
            do {
                let c = try Catalog(path: db, repositoryURL: "r", segmentSize: seg16)
                try c.recordArchived(segmentMeta(1, k, first: Int64(k) * 10, last: Int64(k) * 10 + 5,
                                                 restorePoints: k % 7 == 0 ? [("rp\(k)", Int64(k) * 10 + 1)] : []))
            }
            let line = "\(k)\n"
            _ = line.withCString { write(fd, $0, strlen($0)) }   // reported committed only after COMMIT returned
            k += 1
        }
    }

    /// SIGKILLs a writer process at many points; after each kill the catalog opens, passes
    /// integrity_check, holds every segment the child reported committed, and its derived
    /// tables (runs, counters, reach) agree with the segment rows.
    @Test func killedWriterLosesNothing() throws {
        guard ProcessInfo.processInfo.environment[childDBEnv] == nil else { return }
        let d = tempDir()
        let db = d + "/c.db", log = d + "/committed.log"
        _ = try Catalog(path: db, repositoryURL: "r", segmentSize: seg16)
        var next: UInt64 = 1
        var kills = 0
        for round in 0..<12 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
            p.arguments = Array(CommandLine.arguments.dropFirst().prefix(0)) + ["--testing-library", "swift-testing", "--filter", "crashChildWriter"]
            var env = ProcessInfo.processInfo.environment
            env[childDBEnv] = db; env[childLogEnv] = log; env[childStartEnv] = String(next)
            p.environment = env
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            // Wait for the child to commit something, then kill it a little later.
            let deadline = Date().addingTimeInterval(20)
            while committed(log).last.map({ $0 < next }) ?? true, Date() < deadline, p.isRunning { usleep(2_000) }
            usleep(UInt32.random(in: 0...60_000) + UInt32(round) * 3_000)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal { kills += 1 }

            let reported = committed(log)
            let c = try Catalog(path: db, repositoryURL: "r", segmentSize: seg16)
            #expect(try c.integrityCheck() == "ok")
            for k in reported where k >= next { #expect(try c.segment(timeline: 1, segno: k) != nil, "segment \(k) reported committed but missing") }
            let n = try c.counts().segments
            let thisRound = reported.filter { $0 >= next }.count
            let before = Int64(next - 1)
            // Every reported commit is there; at most one more committed before the kill hit.
            #expect(n - before >= Int64(thisRound) && n - before <= Int64(thisRound) + 1,
                    "rows \(n), before \(before), reported this round \(thisRound)")
            let ranges = try c.archivedRanges(timeline: 1)
            #expect(ranges.count == 1 && ranges.first.map { Int64($0.count) } == n)
            let top = UInt64(n)
            #expect(try c.firstSegment(reaching: at(Int64(top) * 10), on: c.path(to: 1))?.segno == top)
            next = top + 1
        }
        #expect(kills >= 10)
        #expect(next > 12)
    }

    private func committed(_ log: String) -> [UInt64] {
        guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { UInt64($0) }
    }
}

final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}
