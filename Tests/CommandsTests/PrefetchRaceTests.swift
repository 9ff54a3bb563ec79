import Foundation
import Testing
import Storage
import TestSupport
import WALFormat
import Codec
import FastPath
@testable import Commands

/// Issue 19: a prefetcher stopping (idle timeout, the end of its planned range, a stop request,
/// `--cleanup`, a history file clearing the spool) while archive-get asks for a segment must never
/// change the answer: the segment (byte-identical) when archived, "not found" past the end, never
/// an error. A foreground loop (the full path and walctl-fast's `servePrefetched`, falling back to
/// the full path as the real front does) runs against a thread that starts and stops in-process
/// prefetchers at random moments. Bounded (`WALCTL_RACE_SECONDS`, default 3 s); the seed is
/// printed and `WALCTL_RACE_SEED` replays it.
@Suite struct PrefetchRaceTests {
    let root: String
    let repository: Repository
    let size = WALSegmentSize(bytes: 1 << 20)!
    /// Archived segments: 1 ... last; last + 1 and beyond are absent.
    let last: XLogSegNo = 10

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-race-\(UUID().uuidString)").path
        repository = Repository(store: FileStore(root: root + "/repo"), url: "file://" + root + "/repo")
        try repository.bind(RepositoryInfo(systemIdentifier: 7_712_321_645_893_095_454, walSegmentSize: size.bytes,
                                           pgVersion: 15, createdAt: PGTimestamp(microseconds: 0)))
        try FileManager.default.createDirectory(atPath: root + "/pg_wal", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/empty.conf", contents: Data())
    }

    func name(_ n: XLogSegNo) -> String { SegmentID(timeline: 1, segno: n).fileName(size: size) }

    func segment(_ n: XLogSegNo) -> [UInt8] {
        var w = SyntheticWAL(segmentSize: size, firstSegment: n)
        _ = w.appendCommit(time: PGTimestamp(microseconds: 848_980_022_115_455 + Int64(n)))
        return w.segment(0)
    }

    func config() throws -> Configuration {
        try Configuration.load(flags: ["repository": "file://" + root + "/repo", "catalog": root + "/catalog.db",
                                       "restore-prefetch": "4", "archive-get-retry-time": "0"],
                               environment: [:], configPath: "/dev/null")
    }

    /// SplitMix64: a seeded generator, so a failing run can be replayed.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// In-process prefetchers on their own threads (the real ones are `walctl` processes).
    final class Prefetchers: @unchecked Sendable {
        let make: (TimeInterval, Bool) -> PrefetchDaemon
        private let lock = NSLock()
        private var running = 0
        private(set) var started = 0
        init(make: @escaping (TimeInterval, Bool) -> PrefetchDaemon) { self.make = make }

        /// The next of a fixed cycle of idle timeouts and planned ends (a foreground's start).
        func startNext() {
            lock.lock(); let k = started; lock.unlock()
            start(idleExit: [0.005, 0.02, 0.1, 0.5][k % 4], planned: k % 3 == 0)
        }

        func start(idleExit: TimeInterval, planned: Bool) {
            let d = make(idleExit, planned)
            lock.lock(); running += 1; started += 1; lock.unlock()
            Thread.detachNewThread {
                _ = try? d.run()
                self.lock.lock(); self.running -= 1; self.lock.unlock()
            }
        }

        var active: Int { lock.lock(); defer { lock.unlock() }; return running }
    }

    @Test func stoppingThePrefetcherAtRandomMomentsNeverChangesTheAnswer() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        var bytes: [XLogSegNo: Data] = [:]   // Data: compared with memcmp even in a debug build
        let push = ArchivePush(repository: repository, codec: .zstd, level: nil)
        for n in 1...last {
            bytes[n] = Data(segment(n))
            try bytes[n]!.write(to: URL(fileURLWithPath: root + "/" + name(n)))
            _ = try push.push(path: root + "/" + name(n))
        }
        let env = ProcessInfo.processInfo.environment
        let seed = env["WALCTL_RACE_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        let seconds = env["WALCTL_RACE_SECONDS"].flatMap { Double($0) } ?? 3
        print("PrefetchRaceTests: seed \(seed) (WALCTL_RACE_SEED=\(seed) replays it), \(seconds) s")

        let spool = PrefetchSpool(dir: root + "/pg_wal/walctl_prefetch")
        let repo = repository, size = size, last = last
        let prefetchers = Prefetchers { idle, planned in
            let d = PrefetchDaemon(spool: spool, repository: repo, repositorySetting: "file://" + self.root + "/repo", depth: 4,
                                   spoolMax: 1 << 30, workers: 2, segmentSize: size, logger: WalctlLog.silent)
            d.idleExit = idle
            if planned { d.planEnd = [1: last] }   // the end of walctl recover's planned range
            return d
        }
        var get = PrefetchGet(config: try config())
        let idleChoices: [TimeInterval] = [0.005, 0.02, 0.1, 0.5]
        var fgRNG = Seeded(state: seed)
        get.launchDaemon = { _ in prefetchers.startNext() }

        // The stopper: every few milliseconds, one of the ways a prefetcher stops or loses its spool.
        let deadline = Date().addingTimeInterval(seconds)
        let stopperDone = DispatchSemaphore(value: 0)
        let actions = StopCounts()
        let cleanupRunning = NSLock()
        Thread.detachNewThread {
            var rng = Seeded(state: seed ^ 0x5DEE_CE66_D1CE_4E5B)
            while Date() < deadline {
                // Storms (a stop every few hundred microseconds) and calm (prefetchers fill the
                // spool, the fast path serves from it), alternating at random.
                usleep(Bool.random(using: &rng) ? UInt32.random(in: 0...3_000, using: &rng) : UInt32.random(in: 5_000...40_000, using: &rng))
                switch Int.random(in: 0..<6, using: &rng) {
                case 0:   // recovery reached the end of the archive: stop request + clear (under the shared lock, as a foreground)
                    if let l = SpoolDirectoryLock.shared(spool.dir, create: false) { spool.shutDown(); l.release() }
                    actions.add("stop")
                case 1:   // recovery_end_command = walctl archive-get --cleanup (waits for the prefetcher: on its own thread)
                    if cleanupRunning.try() {
                        actions.add("cleanup")
                        Thread.detachNewThread { spool.remove(); cleanupRunning.unlock() }
                    }
                case 2:   // a timeline history file was restored: the spool is cleared
                    if let l = SpoolDirectoryLock.shared(spool.dir, create: false) { spool.clear(); l.release() }
                    actions.add("clear")
                case 3:   // a prefetcher that goes idle almost at once, or stops at the planned end
                    prefetchers.start(idleExit: idleChoices.randomElement(using: &rng)!, planned: Bool.random(using: &rng))
                    actions.add("start")
                default:  // let idle timeouts happen
                    break
                }
            }
            stopperDone.signal()
        }

        let target = root + "/pg_wal/RECOVERYXLOG"
        let fastEnv = FastFront.Environment(variable: { name in
            ["WALCTL_CONFIG": self.root + "/empty.conf", "WALCTL_RESTORE_PREFETCH": "4",
             "WALCTL_REPOSITORY": "file://" + self.root + "/repo", "WALCTL_ARCHIVE_GET_RETRY_TIME": "0"][name]
        }, cwd: root, bootID: FastFS.bootID())
        var next: XLogSegNo = 1
        var calls = 0, fastServed = 0, restored = 0, absent = 0
        while Date() < deadline {
            // Mostly in order, as recovery asks, with jumps and calls past the end of the archive.
            if Int.random(in: 0..<10, using: &fgRNG) == 0 { next = XLogSegNo.random(in: 1...(last + 2), using: &fgRNG) }
            let n = next
            next = n > last ? 1 : n + 1
            unlink(target)
            calls += 1
            let fast = Bool.random(using: &fgRNG)
            var outcome: GetOutcome?
            if fast, FastFront.run(["walctl-fast", "archive-get", name(n), "pg_wal/RECOVERYXLOG"], env: fastEnv) == .exit(0) {
                fastServed += 1
            } else {
                do {
                    outcome = try get.getIfEnabled(fileName: name(n), targetPath: target, direct: { r in
                        try ArchiveGet(repository: r, retryTime: 0).get(fileName: self.name(n), targetPath: target)
                    })
                } catch {
                    Issue.record("seed \(seed), call \(calls): archive-get of \(name(n)) failed: \(error)")
                    break
                }
            }
            let onDisk = FileManager.default.contents(atPath: target)
            if n <= last {
                if case .notFound? = outcome { Issue.record("seed \(seed), call \(calls): \(name(n)) is archived but reported absent"); break }
                guard onDisk == bytes[n] else {
                    Issue.record("seed \(seed), call \(calls): \(name(n)) restored with the wrong bytes (\(onDisk?.count ?? -1) bytes)")
                    break
                }
                restored += 1
            } else {
                guard case .notFound? = outcome, onDisk == nil else {
                    Issue.record("seed \(seed), call \(calls): \(name(n)) is not archived but the answer was \(String(describing: outcome))")
                    break
                }
                absent += 1
                // The end of the archive told the prefetcher to stop: the next request comes while
                // it may be removing its spool.
                usleep(UInt32.random(in: 0...60_000, using: &fgRNG))
            }
        }
        stopperDone.wait()
        cleanupRunning.lock(); cleanupRunning.unlock()
        // Stop whatever still runs, and wait for it, before the directory goes.
        spool.remove()
        let end = Date().addingTimeInterval(30)
        while prefetchers.active > 0 && Date() < end {
            if SpoolFS.exists(spool.dir) { try? SpoolFS.write(spool.stopPath, []) }
            usleep(10_000)
        }
        print("PrefetchRaceTests: \(calls) calls (\(restored) restored, \(fastServed) of them by the fast path, \(absent) absent), "
              + "\(prefetchers.started) prefetchers started, stopper: \(actions.summary)")
        #expect(prefetchers.active == 0)
        #expect(calls > 10)
    }

    /// How often the stopper did what.
    final class StopCounts: @unchecked Sendable {
        private let lock = NSLock()
        private var counts: [String: Int] = [:]
        func add(_ k: String) { lock.lock(); counts[k, default: 0] += 1; lock.unlock() }
        var summary: String { lock.lock(); defer { lock.unlock() }; return counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
    }
}
