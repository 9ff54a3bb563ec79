import Foundation
import Storage
import WALFormat
import Codec
import Logging

/// Where archive-push reports what it stored, after the object and its meta are durable. The catalog
/// implements it; failures there are logged, never fail the push (the repository is the truth).
public protocol ArchiveRecorder {
    func recordArchived(_ meta: ArchivedFileMeta, repository: Repository, info: RepositoryInfo, content: UnsafeRawBufferPointer) throws
}

/// The outcome of one archive-push.
public enum PushOutcome: Equatable {
    /// Stored now.
    case stored(ArchivedFileMeta)
    /// The identical file was already archived (a re-push after a crash): nothing written.
    case alreadyArchived(ArchivedFileMeta)
}

/// archive-push: validate, summarise, checksum, compress and store one file, durably, never
/// overwriting a different archived file.
public struct ArchivePush {
    public var repository: Repository
    public var codec: CodecKind
    public var level: Int32?
    public var recorder: ArchiveRecorder?
    /// Warnings (damaged WAL, a healed object, swept leftovers, a catalog not updated) at warning,
    /// each repository request and decision at debug (`log-level`).
    public var logger: Logger

    public init(repository: Repository, codec: CodecKind, level: Int32?, recorder: ArchiveRecorder? = nil,
                logger: Logger = WalctlLog.silent) {
        self.repository = repository; self.codec = codec; self.level = level; self.recorder = recorder; self.logger = logger
    }

    /// A push with the configured codec and level (`compress-type`, `compress-level`) recording into
    /// the configured catalog: what the synchronous and the asynchronous paths both use.
    public init(config: Configuration, repository: Repository, logger: Logger) throws {
        let (codec, level): (CodecKind, Int32?)
        do { (codec, level) = try config.compression() } catch { throw WalctlError.configuration(error) }
        self.init(repository: repository, codec: codec, level: level, recorder: CatalogRecorder.make(config: config), logger: logger)
    }

    /// The checks on what PostgreSQL handed over, before anything is read or stored: the file name
    /// (the last component of `path`), then the file type (a FIFO, device, directory or socket is
    /// refused without being opened).
    public static func checkInput(path: String) throws -> WALFileName {
        let base = (path as NSString).lastPathComponent
        guard !path.isEmpty, let name = WALFileName(base) else { throw WalctlError.invalidName(base) }
        try checkRegularFile(path)
        return name
    }

    /// Validates the file name and type (`checkInput`), then pushes it.
    public func push(path: String) throws -> PushOutcome {
        let name = try Self.checkInput(path: path)
        guard let info = try repository.info() else { throw WalctlError.notInitialised(repository: repository.url) }
        let file = try MappedFile(path: path)
        try archiveMissingParents(of: name, content: file.bytes, directory: (path as NSString).deletingLastPathComponent)
        return try push(name: name, content: file.bytes, info: info, displayPath: path)
    }

    /// Pushes `content` as `name`. `content` must stay valid for the call.
    public func push(name: WALFileName, content: UnsafeRawBufferPointer, info: RepositoryInfo, displayPath: String) throws -> PushOutcome {
        let size = try checkHeader(name: name, content: content, info: info, displayPath: displayPath)
        let crc = CRC32C.checksum(content)

        logger.debug("\(name): GET \(repository.url)/\(RepositoryLayout.metaKey(name))")
        if let existing = try repository.meta(for: name) {
            logger.debug("\(name): already archived (crc32c \(existing.crc32c)); comparing with this file (crc32c \(ArchivedFileMeta.hex(crc)))")
            let outcome = try reconcile(existing: existing, name: name, content: content, crc: crc)
            // A push killed between its meta and the catalog insert is retried by PostgreSQL: heal the catalog.
            record(existing, info: info, content: content)
            return outcome
        }

        // The WAL scan (record CRCs, commit times) runs on a second core while this one compresses
        // and stores; its result is needed only for the meta, which is written after both.
        let scan = size.map { BackgroundScan(content: content, segmentSize: $0) }
        let key = RepositoryLayout.objectKey(name, crc32c: crc, extension: codec.fileExtension)
        let storedSize: Int64
        logger.debug("\(name): PUT \(repository.url)/\(key) (\(content.count) bytes, \(codec.rawValue))")
        do { storedSize = try store(content, key: key, metaFollows: true) } catch { _ = scan?.wait(); throw error }
        var summary: SegmentSummary?
        if let scan {
            switch scan.wait() {
            case .success(let s): summary = s
            case .failure(let e): throw WalctlError.invalidWAL(file: displayPath, reason: e)
            }
        }
        Self.noteDamage(&summary, name: name, displayPath: displayPath, logger: logger)
        let meta = ArchivedFileMeta(name: name.description, size: Int64(content.count), storedSize: storedSize,
                                    codec: codec.rawValue, crc32c: crc, archivedAt: PGTimestamp(date: Date()), summary: summary)
        logger.debug("\(name): PUT \(repository.url)/\(RepositoryLayout.metaKey(name)) if absent (the commit marker; \(storedSize) bytes stored)")
        do {
            try repository.store.put(key: RepositoryLayout.metaKey(name), bytes: try Repository.encodeMeta(meta),
                                     options: PutOptions(ifAbsent: true))
        } catch StoreError.alreadyExists {
            // Another push of the same name won the race: accept only if it archived the same bytes.
            guard let winner = try repository.meta(for: name) else { throw WalctlError.store(.alreadyExists(key: RepositoryLayout.metaKey(name))) }
            return try reconcile(existing: winner, name: name, content: content, crc: crc)
        } catch let e as StoreError {
            throw WalctlError.store(e)
        }
        record(meta, info: info, content: content)
        sweepLeftovers(after: name, info: info)
        return .stored(meta)
    }

    /// Temporary objects older than this are leftovers of interrupted writes (no write takes an hour).
    static let leftoverAge: TimeInterval = 3600
    /// A push sweeps when its segment number is a multiple of this: one directory read per 16 segments.
    static let sweepEvery: UInt64 = 16

    /// Leftovers (file repository): after storing segment N with N % 16 == 0, removes temporary objects
    /// older than an hour from N's directory and the one before it (`wal/TTTTTTTTLLLLLLLL`, one lower
    /// LLLLLLLL); after a history file, from `wal/history`. One `readdir` of each; only hidden names are
    /// looked at further. Removals are logged. See docs/operator-guide.md.
    func sweepLeftovers(after name: WALFileName, info: RepositoryInfo) {
        guard let sweeper = repository.store as? LeftoverSweeping else { return }
        var keys: [String] = []
        switch name {
        case .segment(let s):
            guard let size = info.segmentSize, let id = SegmentID(fileName: s, size: size), id.segno % Self.sweepEvery == 0 else { return }
            keys.append(RepositoryLayout.metaKey(name))
            if id.segno >= size.segmentsPerXLogID {
                let before = SegmentID(timeline: id.timeline, segno: id.segno - size.segmentsPerXLogID)
                keys.append(RepositoryLayout.metaKey(.segment(before.fileName(size: size))))
            }
        case .history:
            keys.append(RepositoryLayout.metaKey(name))
        default:
            return
        }
        for key in keys {
            let removed = sweeper.removeLeftovers(besideKey: key, olderThan: Self.leftoverAge)
            if !removed.isEmpty {
                let dir = String(key[..<(key.lastIndex(of: "/") ?? key.endIndex)])
                logger.warning("removed \(removed.count) temporary object(s) older than an hour, left in \(dir) by interrupted writes: \(removed.sorted().joined(separator: ", "))")
            }
        }
    }

    /// Damaged WAL (`SegmentSummary.damage(for:)`) is stored anyway, since refusing would stop archiving
    /// and fill pg_wal, but never silently: `WARNING: DAMAGED WAL` with the LSN goes to PostgreSQL's
    /// log, and the meta's summary records `damagedAt` / `damageReason` for verify and info.
    static func noteDamage(_ summary: inout SegmentSummary?, name: WALFileName, displayPath: String, logger: Logger) {
        guard let damage = summary?.damage(for: name) else { return }
        summary?.damagedAt = damage.lsn
        summary?.damageReason = damage.reason
        logger.warning("\(damageWarning(name: name.description, damage: damage, displayPath: displayPath))")
    }

    /// The one wording of the damaged-WAL warning (synchronous push, pusher log, async foreground).
    public static func damageWarning(name: String, damage: WALDamage, displayPath: String? = nil) -> String {
        "WARNING: DAMAGED WAL in \(name)\(displayPath.map { " (\($0))" } ?? "") at \(damage.lsn): \(damage.reason). " +
        "It is archived as it is (refusing would stop archiving and fill pg_wal), but recovery cannot replay past \(damage.lsn): " +
        "check the storage of pg_wal and take a new base backup (`walctl backup take`)"
    }

    /// Checks the file is what its name says (segments: size, page header, system identifier; history
    /// and backup files: they parse) and returns the WAL summary for segments.
    func validate(name: WALFileName, content: UnsafeRawBufferPointer, info: RepositoryInfo, displayPath: String) throws -> SegmentSummary? {
        guard let size = try checkHeader(name: name, content: content, info: info, displayPath: displayPath) else { return nil }
        do {
            return try SegmentSummary.scan(content, segmentSize: size, verifyCRC: true)
        } catch {
            throw WalctlError.invalidWAL(file: displayPath, reason: error)
        }
    }

    /// The cheap part of `validate`: everything but the record scan. Returns the segment size for
    /// files that carry WAL (and so need a scan), nil for history and backup history files.
    func checkHeader(name: WALFileName, content: UnsafeRawBufferPointer, info: RepositoryInfo, displayPath: String) throws -> WALSegmentSize? {
        switch name {
        case .segment(let s), .partial(let s):
            guard let size = info.segmentSize else { throw WalctlError.notInitialised(repository: repository.url) }
            guard UInt64(content.count) == size.bytes else {
                throw WalctlError.invalidWAL(file: displayPath, reason: .fileSizeMismatch(actual: content.count, expected: size.bytes))
            }
            guard let id = SegmentID(fileName: s, size: size) else { throw WalctlError.invalidName(name.description) }
            do {
                let header = try LongPageHeader(bytes: content)
                try header.validate(.init(segment: id, segmentSize: size, systemIdentifier: info.systemID))
                return size
            } catch let e as WALFormatError {
                throw WalctlError.invalidWAL(file: displayPath, reason: e)
            }
        case .history(let tli):
            try checkHistory(tli, content: content, displayPath: displayPath)
            return nil
        case .backupHistory(let segment, let offset):
            guard let size = info.segmentSize else { throw WalctlError.notInitialised(repository: repository.url) }
            try Self.checkBackupHistory(segment: segment, offset: offset, size: size, content: content, displayPath: displayPath)
            return nil
        }
    }

    /// A timeline history file must be one PostgreSQL could have written (`TimelineHistory.validate`)
    /// whose ancestors, but timeline 1 (which has no history file), are archived already.
    func checkHistory(_ tli: TimeLineID, content: UnsafeRawBufferPointer, displayPath: String) throws {
        let history: TimelineHistory
        do {
            history = try Self.parseHistory(tli, content: content)
        } catch let e as WALFormatError {
            throw WalctlError.invalidWAL(file: displayPath, reason: e)
        }
        for parent in Set(history.entries.map(\.timeline)).sorted() where parent > 1 {
            guard try repository.meta(for: .history(parent)) == nil else { continue }
            let file = hex8(UInt64(parent)) + ".history"
            let why = "its parent timeline \(parent) has no history file in the repository (\(file)); " +
                      "archive that first: `walctl archive-push pg_wal/\(file)`"
            throw WalctlError.invalidWAL(file: displayPath, reason: WALFormatError.invalidHistory(why))
        }
    }

    static func parseHistory(_ tli: TimeLineID, content: UnsafeRawBufferPointer) throws -> TimelineHistory {
        let h = try TimelineHistory(timeline: tli, text: String(decoding: content, as: UTF8.self))
        try h.validate()
        return h
    }

    /// A backup history file must parse and match its name (`BackupLabel.validateBackupHistoryName`).
    static func checkBackupHistory(segment: String, offset: UInt32, size: WALSegmentSize, content: UnsafeRawBufferPointer,
                                   displayPath: String) throws {
        do {
            let label = try BackupLabel(text: String(decoding: content, as: UTF8.self))
            try label.validateBackupHistoryName(segment: segment, offset: offset, segmentSize: size)
        } catch let e as WALFormatError {
            throw WalctlError.invalidWAL(file: displayPath, reason: e)
        }
    }

    /// Before a timeline history file is validated: any ancestor's history file that is missing from
    /// the repository but lies beside it (PostgreSQL keeps every history file in pg_wal) is archived
    /// first, oldest first, so a repository started on a later timeline does not refuse the next
    /// promotion's history forever.
    func archiveMissingParents(of name: WALFileName, content: UnsafeRawBufferPointer, directory: String) throws {
        guard case .history(let tli) = name,
              let history = try? TimelineHistory(timeline: tli, text: String(decoding: content, as: UTF8.self)) else { return }
        for parent in Set(history.entries.map(\.timeline)).sorted() where parent > 1 && parent < tli {
            let parentName = WALFileName.history(parent)
            let path = directory + "/" + parentName.description
            guard try repository.meta(for: parentName) == nil, FileManager.default.fileExists(atPath: path) else { continue }
            logger.warning("\(name) names timeline \(parent), whose history file is not in the repository: archiving \(path) first")
            _ = try push(path: path)
        }
    }

    /// A meta already exists: success only when it describes exactly these bytes.
    func reconcile(existing: ArchivedFileMeta, name: WALFileName, content: UnsafeRawBufferPointer, crc: UInt32) throws -> PushOutcome {
        let newCRC = ArchivedFileMeta.hex(crc)
        guard existing.crc32c == newCRC, existing.size == Int64(content.count) else {
            throw WalctlError.archiveMismatch(name: name.description, archivedCRC: existing.crc32c, newCRC: newCRC)
        }
        // Same checksum and size: compare every byte, so a CRC collision can never pass as identical.
        var offset = 0
        var same = true
        do {
            try ObjectReader(repository: repository).read(existing) { chunk in
                if same {
                    let end = offset + chunk.count
                    if end > content.count || memcmp(chunk.baseAddress!, content.baseAddress! + offset, chunk.count) != 0 { same = false }
                    offset = end
                }
            }
        } catch WalctlError.store(.notFound) {
            // The meta was kept but its data object is gone (deleted, lost with a disk): this file has
            // the recorded CRC-32C and size, so store it again where the meta points.
            try heal(existing, name: name, content: content)
            try confirmDurable(existing, name: name)
            return .alreadyArchived(existing)
        }
        guard same, offset == content.count else {
            throw WalctlError.archiveMismatch(name: name.description, archivedCRC: existing.crc32c, newCRC: newCRC + " (byte comparison)")
        }
        try confirmDurable(existing, name: name)
        return .alreadyArchived(existing)
    }

    /// Exit 0 promises a durable segment, also when this process did not write it: the pusher that
    /// did (a crashed earlier attempt, or the winner of an if-absent race still between its link and
    /// its directory fsync) may not have made it durable yet. On a filesystem: fdatasync of the data
    /// object and the meta, fsync of their directory (cheap: nothing dirty is left in the usual case).
    func confirmDurable(_ existing: ArchivedFileMeta, name: WALFileName) throws {
        guard let store = repository.store as? DurabilityConfirming, let key = existing.objectKey else { return }
        logger.debug("\(name): fsync of \(key) and its meta (archived by another push)")
        do { try store.makeDurable(keys: [key, RepositoryLayout.metaKey(name)]) } catch { throw WalctlError.store(error) }
    }

    /// Re-push heals: stores `content` again as the data object `existing` names (its codec, its key),
    /// when the meta is there and the object is not. The caller checked CRC-32C and size.
    func heal(_ existing: ArchivedFileMeta, name: WALFileName, content: UnsafeRawBufferPointer) throws {
        guard let key = existing.objectKey, let kind = CodecKind(rawValue: existing.codec) else {
            throw WalctlError.store(.configuration("archive metadata for \(existing.name) is malformed"))
        }
        _ = try store(content, key: key, codec: kind, level: kind == codec ? level : nil)
        logger.warning("\(name) was archived, but its data object \(key) was missing from the repository: stored it again from this identical file (crc32c \(existing.crc32c), \(existing.size) bytes)")
    }

    /// Compresses `content` into a new object at `key`; returns the stored size.
    /// `metaFollows`: the meta is committed in the same directory right after (its directory fsync
    /// makes the object's name durable too: PutOptions.directorySyncedByNextCommit).
    func store(_ content: UnsafeRawBufferPointer, key: String, metaFollows: Bool = false) throws -> Int64 {
        try store(content, key: key, codec: codec, level: level, metaFollows: metaFollows)
    }

    func store(_ content: UnsafeRawBufferPointer, key: String, codec: CodecKind, level: Int32?, metaFollows: Bool = false) throws -> Int64 {
        let writer: ObjectWriter
        do { writer = try repository.store.makeWriter(key: key, options: PutOptions(directorySyncedByNextCommit: metaFollows)) } catch { throw WalctlError.store(error) }
        var stored: Int64 = 0
        do {
            let compressor = try codec.makeCompressor(level: level, pledgedSize: UInt64(content.count))
            let sink: ByteSink = { chunk in try writer.write(chunk); stored += Int64(chunk.count) }
            try compressor.compress(content, into: sink)
            try writer.commit()
        } catch let e as StoreError {
            writer.abort()
            throw WalctlError.store(e)
        } catch let e as CodecError {
            writer.abort()
            throw WalctlError.codec(name: key, e)
        } catch {
            writer.abort()
            throw error
        }
        return stored
    }

    func record(_ meta: ArchivedFileMeta, info: RepositoryInfo, content: UnsafeRawBufferPointer) {
        guard let recorder else { return }
        do {
            try recorder.recordArchived(meta, repository: repository, info: info, content: content)
        } catch {
            logger.warning("\(meta.name) is archived, but the catalog was not updated (\(error)); `walctl catalog rebuild` repairs it")
        }
    }
}

/// `SegmentSummary.scan` on its own thread; `wait()` joins it. The buffer must outlive the wait.
final class BackgroundScan: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<SegmentSummary, WALFormatError> = .failure(.truncated(needed: 0, have: 0))

    init(content: UnsafeRawBufferPointer, segmentSize: WALSegmentSize) {
        let thread = Thread { [self] in
            result = Result { () throws(WALFormatError) in try SegmentSummary.scan(content, segmentSize: segmentSize, verifyCRC: true) }
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    func wait() -> Result<SegmentSummary, WALFormatError> {
        done.wait()
        return result
    }
}
