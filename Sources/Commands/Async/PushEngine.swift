import Foundation
import Storage
import WALFormat
import Codec
import Catalog
import Logging

/// The background pusher's pipeline: `compressWorkers` threads validate, checksum and compress
/// ready files into memory; `uploadWorkers` threads store the object, commit its meta (if-absent)
/// and write the spool result. The two stages overlap (compression of the next files runs while the
/// previous ones upload); the bytes staged between them are bounded by `stageMax`
/// (`archive-spool-max`). The durability rule is ArchivePush's: the `.ok` result is written only
/// after the meta, the commit marker, is durable in the repository.
public final class PushEngine: @unchecked Sendable {
    let pusher: ArchivePush
    let info: RepositoryInfo
    let spool: ArchiveSpool
    let walDir: String
    let repositorySetting: String
    let compressWorkers: Int
    let uploadWorkers: Int
    let stageMax: Int64
    /// The daemon's logger: a failed push at error, damaged WAL at warning.
    let logger: Logger

    private let cond = NSCondition()
    private var compressQueue: [ReadyFile] = []
    private var uploadQueue: [Job] = []
    private var inFlight: Set<String> = []
    private var staged: Int64 = 0
    /// When each file last ended with `.ok` (pruned as it goes).
    private var pushedAt: [String: Date] = [:]
    private var stopping = false
    private var running = 0
    private let recordLock = NSLock()
    public private(set) var pushed = 0
    public private(set) var failed = 0

    final class Job {
        let file: ReadyFile
        let name: WALFileName
        let path: String
        let size: Int
        let mtimeNs: Int64
        let crc: UInt32
        let summary: SegmentSummary?
        let compressed: [UInt8]
        /// The whole file for history and backup history files (the catalog reads them); nil for
        /// segments, whose bytes stay in the compression thread's buffer.
        let text: [UInt8]?
        init(file: ReadyFile, name: WALFileName, path: String, size: Int, mtimeNs: Int64, crc: UInt32, summary: SegmentSummary?,
             compressed: [UInt8], text: [UInt8]?) {
            self.file = file; self.name = name; self.path = path; self.size = size; self.mtimeNs = mtimeNs; self.crc = crc
            self.summary = summary; self.compressed = compressed; self.text = text
        }
    }

    public init(pusher: ArchivePush, info: RepositoryInfo, spool: ArchiveSpool, walDir: String, repositorySetting: String,
                compressWorkers: Int, uploadWorkers: Int, stageMax: Int64, logger: Logger) {
        self.pusher = pusher; self.info = info; self.spool = spool; self.walDir = walDir; self.repositorySetting = repositorySetting
        self.compressWorkers = max(1, compressWorkers); self.uploadWorkers = max(1, uploadWorkers)
        self.stageMax = max(1, stageMax); self.logger = logger
    }

    /// Starts the worker threads.
    public func start() {
        for _ in 0..<compressWorkers { Thread.detachNewThread { self.compressLoop() } }
        for _ in 0..<uploadWorkers { Thread.detachNewThread { self.uploadLoop() } }
    }

    /// Queues the files not already in flight; returns how many were new.
    @discardableResult
    public func submit(_ files: [ReadyFile]) -> Int {
        cond.lock(); defer { cond.unlock() }
        var n = 0
        for f in files where !inFlight.contains(f.name) {
            inFlight.insert(f.name); compressQueue.append(f); n += 1
        }
        if n > 0 { cond.broadcast() }
        return n
    }

    public var busy: Bool { cond.lock(); defer { cond.unlock() }; return !inFlight.isEmpty }
    /// Files waiting for a compression thread.
    public var queuedCount: Int { cond.lock(); defer { cond.unlock() }; return compressQueue.count }
    /// Whether `name` was stored by this engine within the last `seconds`.
    public func wasPushedRecently(_ name: String, within seconds: TimeInterval = 5) -> Bool {
        cond.lock(); defer { cond.unlock() }
        guard let t = pushedAt[name] else { return false }
        return Date().timeIntervalSince(t) < seconds
    }
    public var inFlightCount: Int { cond.lock(); defer { cond.unlock() }; return inFlight.count }
    public var stagedBytes: Int64 { cond.lock(); defer { cond.unlock() }; return staged }
    public func isInFlight(_ name: String) -> Bool { cond.lock(); defer { cond.unlock() }; return inFlight.contains(name) }

    /// Waits until something finishes or `timeout` passes.
    public func waitForProgress(timeout: TimeInterval) {
        cond.lock(); _ = cond.wait(until: Date().addingTimeInterval(timeout)); cond.unlock()
    }

    /// Waits until nothing is in flight (or `timeout`); true when idle.
    public func drain(timeout: TimeInterval) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        cond.lock(); defer { cond.unlock() }
        while !inFlight.isEmpty { if !cond.wait(until: end) { return inFlight.isEmpty } }
        return true
    }

    /// Stops the workers after their current file.
    public func stop() { cond.lock(); stopping = true; cond.broadcast(); cond.unlock() }

    private func finish(_ name: String, stagedRelease: Int64, ok: Bool) {
        cond.lock()
        inFlight.remove(name); staged -= stagedRelease
        if ok {
            pushed += 1
            let now = Date()
            if pushedAt.count > 4096 { pushedAt = pushedAt.filter { now.timeIntervalSince($0.value) < 60 } }
            pushedAt[name] = now
        } else {
            failed += 1
        }
        cond.broadcast(); cond.unlock()
    }

    private func fail(_ name: String, _ error: Error, stagedRelease: Int64 = 0) {
        let message: String
        if let w = error as? WalctlError { message = "[\(w.code)] \(w)" } else { message = "\(error)" }
        logger.error("\(name): push failed: \(message)")
        do { try spool.writeError(name, message) } catch { logger.error("\(name): cannot write the error result: \(error)") }
        finish(name, stagedRelease: stagedRelease, ok: false)
    }

    private func compressLoop() {
        let buffer = ReadBuffer()
        var compressor: Compressor?
        while true {
            cond.lock()
            while compressQueue.isEmpty && !stopping { cond.wait() }
            if stopping { cond.unlock(); return }
            let file = compressQueue.removeFirst()
            cond.unlock()
            do {
                let job = try prepare(file, buffer: buffer, compressor: &compressor)
                cond.lock()
                // Bounded staging: wait while the compressed bytes staged would exceed the limit
                // (one file always passes, so a single large file cannot deadlock the pipeline).
                // At most 2 files per upload thread wait, whatever their size (compressed bytes
                // in memory each).
                while staged > 0 && (staged + Int64(job.compressed.count) > stageMax || uploadQueue.count >= 2 * uploadWorkers) && !stopping { cond.wait() }
                staged += Int64(job.compressed.count)
                uploadQueue.append(job)
                cond.broadcast(); cond.unlock()
            } catch {
                fail(file.name, error)
            }
        }
    }

    /// Validates (page header, system identifier, WAL scan), checksums and compresses one file,
    /// read into this thread's `buffer` with this thread's (reused) `compressor`.
    func prepare(_ file: ReadyFile, buffer: ReadBuffer, compressor: inout Compressor?) throws -> Job {
        guard let name = WALFileName(file.name) else { throw WalctlError.invalidName(file.name) }
        let path = walDir + "/" + file.name
        let mtime = SpoolFS.fileInfo(path)?.mtimeNs ?? 0
        let content = try buffer.load(path: path)
        if case .history = name {
            // May push a parent history file, which records into the catalog: under the record lock.
            recordLock.lock(); defer { recordLock.unlock() }
            try pusher.archiveMissingParents(of: name, content: content, directory: walDir)
        }
        var summary = try pusher.validate(name: name, content: content, info: info, displayPath: path)
        ArchivePush.noteDamage(&summary, name: name, displayPath: path, logger: logger)
        var crc = CRC32C()
        var out: [UInt8] = []
        out.reserveCapacity(content.count / 3 + 65536)
        do {
            if let c = compressor {
                try c.reset(pledgedSize: UInt64(content.count))
            } else {
                compressor = try pusher.codec.makeCompressor(level: pusher.level, pledgedSize: UInt64(content.count))
            }
            guard let c = compressor else { throw CodecError.initFailed("no compressor") }
            let sink: ByteSink = { out.append(contentsOf: $0) }
            // The whole buffer at once (zstd reads it in place instead of copying it into its
            // window: more than the cache locality of checksumming slice by slice saved), then
            // the CRC-32C pass (hardware CRC, ~1 ms for 16 MiB).
            try c.compress(content, into: sink)
            crc.update(content)
        } catch let e as CodecError {
            compressor = nil
            throw WalctlError.codec(name: file.name, e)
        } catch {
            compressor = nil
            throw error
        }
        let text: [UInt8]? = name.carriesWAL ? nil : Array(content)
        return Job(file: file, name: name, path: path, size: content.count, mtimeNs: mtime, crc: crc.value, summary: summary,
                   compressed: out, text: text)
    }

    private func uploadLoop() {
        while true {
            cond.lock()
            while uploadQueue.isEmpty && !stopping { cond.wait() }
            if stopping { cond.unlock(); return }
            let job = uploadQueue.removeFirst()
            cond.unlock()
            do {
                let record = try upload(job)
                try spool.writeOK(job.file.name, record)
                finish(job.file.name, stagedRelease: Int64(job.compressed.count), ok: true)
            } catch {
                fail(job.file.name, error, stagedRelease: Int64(job.compressed.count))
            }
        }
    }

    /// Another push of the same name committed first (rare): accepted only when the file, as it is
    /// now, is byte-identical to what the repository holds.
    private func reconcile(_ job: Job) throws -> ArchivedFileMeta {
        guard let winner = try pusher.repository.meta(for: job.name) else {
            throw WalctlError.store(.alreadyExists(key: RepositoryLayout.metaKey(job.name)))
        }
        let source = try MappedFile(path: job.path)
        if case .alreadyArchived(let m) = try pusher.reconcile(existing: winner, name: job.name, content: source.bytes, crc: job.crc) {
            return m
        }
        return winner
    }

    /// Stores the object, then the meta with if-absent; a meta already there is accepted only for
    /// identical bytes (ArchivePush.reconcile).
    func upload(_ job: Job) throws -> PushRecord {
        let repository = pusher.repository
        let key = RepositoryLayout.objectKey(job.name, crc32c: job.crc, extension: pusher.codec.fileExtension)
        let meta = ArchivedFileMeta(name: job.name.description, size: Int64(job.size), storedSize: Int64(job.compressed.count),
                                    codec: pusher.codec.rawValue, crc32c: job.crc, archivedAt: PGTimestamp(date: Date()), summary: job.summary)
        func record(_ m: ArchivedFileMeta, already: Bool) -> PushRecord {
            PushRecord(repository: repositorySetting, sourceSize: Int64(job.size), sourceMTimeNs: job.mtimeNs, meta: m, alreadyArchived: already)
        }
        do {
            try repository.store.put(key: key, bytes: job.compressed, options: PutOptions(directorySyncedByNextCommit: true))
        } catch {
            throw WalctlError.store(error)
        }
        var committed = true
        do {
            try repository.store.put(key: RepositoryLayout.metaKey(job.name), bytes: try Repository.encodeMeta(meta), options: PutOptions(ifAbsent: true))
        } catch StoreError.alreadyExists {
            committed = false
        } catch let e as StoreError {
            throw WalctlError.store(e)
        }
        if !committed { return record(try reconcile(job), already: true) }
        // The catalog is a SQLite file: one writer at a time from this process.
        recordLock.lock()
        if let text = job.text {
            text.withUnsafeBytes { pusher.record(meta, info: info, content: $0) }
        } else {
            pusher.record(meta, info: info, content: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        recordLock.unlock()
        pusher.sweepLeftovers(after: job.name, info: info)
        return record(meta, already: false)
    }
}

/// The pusher's catalog recorder: one connection for the daemon's life instead of one open (and
/// schema check) per file; callers serialise (PushEngine's record lock).
final class DaemonCatalogRecorder: ArchiveRecorder {
    let path: String
    var catalog: Catalog?

    init(path: String) { self.path = path }

    func recordArchived(_ meta: ArchivedFileMeta, repository: Repository, info: RepositoryInfo, content: UnsafeRawBufferPointer) throws {
        guard let size = info.segmentSize else { return }
        if catalog == nil {
            catalog = try Catalog(path: path, repositoryURL: repository.url, segmentSize: size, systemIdentifier: info.systemIdentifier)
        }
        guard let catalog else { return }
        do {
            try catalog.recordArchived(meta)
            if case .history(let tli)? = WALFileName(meta.name) {
                try catalog.recordHistory(try TimelineHistory(timeline: tli, text: String(decoding: content, as: UTF8.self)))
            }
        } catch {
            self.catalog = nil   // reopen next time
            throw error
        }
    }
}
