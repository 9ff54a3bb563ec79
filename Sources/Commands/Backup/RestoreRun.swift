import Codec
import Foundation

/// One archive of a restore: which member's, its codec, where it goes.
struct RestoreItem {
    var member: ChainMember
    var archive: BackupArchive
    var codec: CodecKind
    /// The data directory, or the tablespace's location.
    var root: String
    /// `""`, or `pg_tblspc/<oid>/` for a tablespace's archive (its files' manifest paths).
    var manifestPrefix: String
}

/// What restoring one archive (or all of them) did; summed when every archive is done.
struct RestoreTally {
    var files = 0
    var verified = 0
    var bytes: Int64 = 0
    var storedBytes: Int64 = 0
    /// Manifest paths of the files written and checked.
    var seen = Set<String>()
    /// The archives' directories, by manifest path.
    var dirs = Set<String>()
    var groupAccess = false
    /// `--delta`: bytes of files rewritten in place that were already right, and that were written.
    var unchangedBytes: Int64 = 0
    var rewrittenBytes: Int64 = 0
    /// `--delta`: files compared in place that needed no write.
    var untouchedFiles = 0

    mutating func add(_ o: RestoreTally) {
        files += o.files; verified += o.verified; bytes += o.bytes; storedBytes += o.storedBytes
        unchangedBytes += o.unchangedBytes; rewrittenBytes += o.rewrittenBytes; untouchedFiles += o.untouchedFiles
        seen.formUnion(o.seen); dirs.formUnion(o.dirs)
        groupAccess = groupAccess || o.groupAccess
    }
}

/// Runs a restore's archives on a few threads and joins them all before returning: each thread
/// takes the next archive until none is left. The first error wins: it cancels the run, every
/// archive being read stops at its next chunk (`isCancelled`, checked in the read callback), no
/// further archive starts, and `perform` throws that error only after every thread has finished,
/// so nothing writes into the target once `restoreBackup` has returned or thrown.
final class RestoreRun: @unchecked Sendable {
    /// Thrown by a reader that saw the run cancelled; never reported (the error that cancelled it is).
    struct Cancelled: Error {}

    private let lock = NSLock()
    private var next = 0
    private var cancelled = false
    private var failure: Error?
    private var total = RestoreTally()

    /// True once an archive has failed: stop reading.
    var isCancelled: Bool {
        lock.lock(); defer { lock.unlock() }
        return cancelled
    }

    private func take(_ count: Int) -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard !cancelled, next < count else { return nil }
        next += 1
        return next - 1
    }

    private func finished(_ result: Result<RestoreTally, Error>) {
        lock.lock(); defer { lock.unlock() }
        switch result {
        case .success(let t): total.add(t)
        case .failure(let e):
            if failure == nil && !(e is Cancelled) { failure = e }
            cancelled = true
        }
    }

    /// Restores `items` with `body` on `workers` threads (the caller's among them; 1: all on the
    /// caller's, in order) and returns the sum of their tallies, or throws the first error once
    /// every thread is done.
    static func perform(_ items: [RestoreItem], workers: Int,
                        _ body: @escaping (RestoreItem, RestoreRun) throws -> RestoreTally) throws -> RestoreTally {
        let run = RestoreRun()
        let loop = {
            while let i = run.take(items.count) {
                run.finished(Result { try body(items[i], run) })
            }
        }
        if workers <= 1 {
            loop()
        } else {
            let done = DispatchGroup()
            for _ in 1..<workers {
                done.enter()
                Thread.detachNewThread { loop(); done.leave() }
            }
            loop()
            done.wait()
        }
        run.lock.lock(); defer { run.lock.unlock() }
        if let f = run.failure { throw f }
        return run.total
    }
}
