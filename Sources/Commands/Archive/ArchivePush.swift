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
    public var warn: (String) -> Void
    /// Each repository request and decision at debug level (`log-level`).
    public var logger: Logger = WalctlLog.silent

    public init(repository: Repository, codec: CodecKind, level: Int32?, recorder: ArchiveRecorder? = nil,
                warn: @escaping (String) -> Void = { _ in }) {
        self.repository = repository; self.codec = codec; self.level = level; self.recorder = recorder; self.warn = warn
    }

    /// A push with the configured codec and level (`compress-type`, `compress-level`) recording into
    /// the configured catalog: what the synchronous and the asynchronous paths both use.
    public init(config: Configuration, repository: Repository, warn: @escaping (String) -> Void) throws {
        let (codec, level): (CodecKind, Int32?)
        do { (codec, level) = try config.compression() } catch { throw WalctlError.configuration(error) }
        self.init(repository: repository, codec: codec, level: level, recorder: CatalogRecorder.make(config: config, warn: warn), warn: warn)
    }

    /// Validates the file name (the last component of `path`), then pushes it.
    public func push(path: String) throws -> PushOutcome {
        let base = (path as NSString).lastPathComponent
        guard !path.isEmpty, let name = WALFileName(base) else { throw WalctlError.invalidName(base) }
        guard let info = try repository.info() else { throw WalctlError.notInitialised(repository: repository.url) }
        let file = try MappedFile(path: path)
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
        do { storedSize = try store(content, key: key) } catch { _ = scan?.wait(); throw error }
        var summary: SegmentSummary?
        if let scan {
            switch scan.wait() {
            case .success(let s): summary = s
            case .failure(let e): throw WalctlError.invalidWAL(file: displayPath, reason: e)
            }
        }
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
        return .stored(meta)
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
            do { _ = try TimelineHistory(timeline: tli, text: String(decoding: content, as: UTF8.self)) } catch {
                throw WalctlError.invalidWAL(file: displayPath, reason: error)
            }
            return nil
        case .backupHistory:
            do { _ = try BackupLabel(text: String(decoding: content, as: UTF8.self)) } catch {
                throw WalctlError.invalidWAL(file: displayPath, reason: error)
            }
            return nil
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
        try ObjectReader(repository: repository).read(existing) { chunk in
            if same {
                let end = offset + chunk.count
                if end > content.count || memcmp(chunk.baseAddress!, content.baseAddress! + offset, chunk.count) != 0 { same = false }
                offset = end
            }
        }
        guard same, offset == content.count else {
            throw WalctlError.archiveMismatch(name: name.description, archivedCRC: existing.crc32c, newCRC: newCRC + " (byte comparison)")
        }
        return .alreadyArchived(existing)
    }

    /// Compresses `content` into a new object at `key`; returns the stored size.
    func store(_ content: UnsafeRawBufferPointer, key: String) throws -> Int64 {
        let writer: ObjectWriter
        do { writer = try repository.store.makeWriter(key: key, options: PutOptions()) } catch { throw WalctlError.store(error) }
        var stored: Int64 = 0
        do {
            let compressor = try codec.makeCompressor(level: level, pledgedSize: UInt64(content.count))
            let sink: ByteSink = { chunk in try writer.write(chunk); stored += Int64(chunk.count) }
            // Feed in 4 MiB slices so output reaches the store while the rest compresses.
            var offset = 0
            while offset < content.count {
                let n = min(4 << 20, content.count - offset)
                try compressor.update(UnsafeRawBufferPointer(rebasing: content[offset..<(offset + n)]), into: sink)
                offset += n
            }
            try compressor.finish(into: sink)
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
            warn("\(meta.name) is archived, but the catalog was not updated (\(error)); `walctl catalog rebuild` repairs it")
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
