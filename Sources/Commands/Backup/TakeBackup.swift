import Catalog
import Codec
import Foundation
import Logging
import PGClient
import Storage
import WALFormat

/// Where the tar archives of a base backup are compressed.
public enum BackupCompression: Sendable, Equatable {
    /// zstd inside PostgreSQL (15+, `BASE_BACKUP ... COMPRESSION 'zstd'`): the client only stores.
    case server(level: Int32)
    /// walctl compresses the plain tar stream with `codec`.
    case client(CodecKind, level: Int32?)
    /// Server-side zstd when the server is 15+ and `codec` is zstd, else client-side `codec`.
    case automatic(CodecKind, level: Int32?)
}

/// What `walctl backup --type` (setting `backup-type`) asks for.
public enum BackupTypeRequest: String, Sendable, CaseIterable {
    case full
    /// Only what changed since the newest backup of the chain; refused (`no-parent-backup`) when there is none.
    case incremental
    /// Incremental when possible, else a full backup (and says so).
    case incrementalOrFull = "incremental-or-full"
}

/// Settings of one `walctl backup`.
public struct BackupOptions: Sendable {
    /// `--type` / `backup-type`.
    public var type: BackupTypeRequest = .full
    /// The data directory a file-level incremental reads (the `pgdata` setting); nil: the server's
    /// `data_directory`. walctl must run on the database host for it (docs/backup.md).
    public var pgdata: String?
    /// The backup's label (and key under `backup/`); nil makes one from the start time (`20261126-053012F`).
    public var label: String?
    public var compression: BackupCompression = .automatic(.zstd, level: nil)
    /// Immediate checkpoint (`CHECKPOINT 'fast'`), the default; false waits for a spread checkpoint.
    public var fastCheckpoint = true
    /// Ask the server for `backup_manifest` with CRC32C checksums (PostgreSQL 13+).
    public var manifest = true
    /// How long to wait for the WAL from start to stop LSN to be archived before failing.
    public var archiveTimeout: TimeInterval = 60
    /// Poll interval while waiting for WAL.
    public var archivePollInterval: TimeInterval = 0.2
    /// Rate limit in kB/s for the server's reads (`MAX_RATE`), nil for none.
    public var maxRateKBps: Int?
    /// `--annotation key=value`, stored in `backup.json`.
    public var annotations: [String: String] = [:]
    public init() {}
}

/// Streams an online full base backup of the cluster at `conninfo` into `repository`.
///
/// Uses a `replication=database` connection and `BASE_BACKUP` (tar format, server manifest), never a
/// local copy: each tar streams through compression (in the server, or here) into
/// `backup/<label>/<archive>` objects, then `backup_manifest`, then, once every WAL segment from the
/// start to the stop LSN has an archived `.meta` in the repository, `backup.json`, the commit marker.
/// A backup without `backup.json` does not exist (listing ignores it); on failure walctl deletes the
/// objects it wrote.
///
/// - Parameters:
///   - conninfo: libpq conninfo or URI; empty means the `PG*` environment.
///   - catalog: when given, the backup is recorded there as `running`, then `complete` (or `failed`);
///     catalog failures are logged (warning) and never fail the backup (the repository is the
///     truth and the catalog can be rebuilt from it).
///   - logger: steps at info, fallbacks (a full backup instead, client compression) at notice,
///     warnings at warning: one line each.
///   - progress: where the streaming's progress is shown (bytes of the server's estimate, which
///     asks it for `PROGRESS`: one extra pass over the data directory's file sizes).
/// - Returns: the record written (also inside `backup.json`).
/// - Throws: `WalctlError` — `.notInitialised`, `.refused` (another cluster, segment size, archive_mode
///   off, tablespace, label taken), `.postgres`, `.store`, `.timeout` (WAL not archived in time).
public func takeBackup(connection conninfo: String, repository: Repository, options: BackupOptions = BackupOptions(),
                       catalog: Catalog? = nil, logger: Logger = WalctlLog.silent,
                       progress: ProgressOutput = .off) throws -> BackupRecord {
    guard let info = try repository.info() else { throw WalctlError.notInitialised(repository: repository.url) }
    let conn = try pg { try PGConnection(conninfo: conninfo, replication: .database) }
    let ident = try pg { try conn.identifySystem() }
    guard ident.systemIdentifier == info.systemID else {
        throw WalctlError.refused(
            "the cluster at \(conn.target) is database system \(ident.systemIdentifier), but repository \(repository.url) is bound to system \(info.systemIdentifier): refusing to mix clusters; use the repository of this cluster")
    }
    let segBytes = try pg { try conn.walSegmentSize() }
    guard segBytes == info.walSegmentSize, let segSize = WALSegmentSize(bytes: segBytes) else {
        throw WalctlError.refused("the cluster uses \(segBytes)-byte WAL segments, repository \(repository.url) holds \(info.walSegmentSize)-byte segments")
    }
    let version = conn.serverVersion
    let archiveMode = try pg { try conn.show("archive_mode") }
    guard archiveMode != "off" else {
        throw WalctlError.refused("archive_mode is off on \(conn.target): the WAL a backup needs would never be archived; set archive_mode = on and archive_command to walctl archive-push, then restart PostgreSQL")
    }

    // Compression.
    var server: BaseBackupOptions.ServerCompression?
    var clientCodec = CodecKind.none
    var clientLevel: Int32?
    switch options.compression {
    case .server(let level):
        guard version >= 150000 else {
            throw WalctlError.refused("server-side compression needs PostgreSQL 15 or later; the server is \(version / 10000): use client compression")
        }
        server = .zstd(level: level)
    case .client(let codec, let level):
        clientCodec = codec; clientLevel = level
    case .automatic(let codec, let level):
        if codec == .zstd && version >= 150000 { server = .zstd(level: level ?? CodecKind.zstd.defaultLevel) }
        else { clientCodec = codec; clientLevel = level }
    }

    // Type: an incremental builds on the newest backup of the chain (docs/backup.md).
    var parent = try chooseParent(options.type, repository: repository, info: info, timeline: ident.timeline,
                                  pgVersion: version / 10000, logger: logger)
    // PostgreSQL 17+: the server's own incremental protocol, on the parent's uploaded manifest.
    var parentManifest: [UInt8]?
    if let p = parent, version >= 170000 {
        parentManifest = try nativeIncrementalManifest(options.type, parent: p, conn: conn, currentTimeline: ident.timeline,
                                                       repository: repository, logger: logger)
        if parentManifest == nil { parent = nil }
    }

    // Label.
    let startDate = Date()
    let label = options.label ?? BackupMetadata.makeLabel(startDate, incremental: parent != nil)
    try BackupMetadata.validateLabel(label)
    let prefix = BackupMetadata.prefix(label: label)
    guard try repository.store.list(prefix: prefix).isEmpty else {
        throw WalctlError.refused("backup label \(label) is already used in \(repository.url): choose another label (or wait a second)")
    }

    // Registered while it runs, so an expire on any host leaves its objects alone (docs/retention.md).
    let holdKey = try RepositoryLock.register(repository.store, kind: "backup", label: label, timeline: nil, from: nil, duration: 24 * 3600)
    defer { RepositoryLock.unregister(repository.store, key: holdKey) }

    if let parent, parentManifest == nil {
        return try takeFileIncrementalBackup(conninfo: conninfo, repository: repository, info: info, label: label, parent: parent,
                                             segSize: segSize, serverVersion: version, startDate: startDate, options: options,
                                             catalog: catalog, logger: logger, progress: progress)
    }

    var bb = BaseBackupOptions(label: "walctl " + label)
    bb.fastCheckpoint = options.fastCheckpoint
    bb.manifest = options.manifest
    bb.serverCompression = server
    bb.maxRateKBps = options.maxRateKBps
    bb.estimateSize = progress.isOn
    if parentManifest != nil { bb.incremental = true; bb.manifest = true }
    var compressionText = server != nil ? "zstd (server)" : clientCodec.rawValue + " (client)"
    logger.info("backup \(label): starting from \(conn.target), PostgreSQL \(version), compression \(compressionText)\(parent.map { ", incremental (native) on \($0.label)" } ?? "")")

    let sink = RepositoryBackupSink(store: repository.store, prefix: prefix, codec: clientCodec, level: clientLevel)
    let shown = progress.start("backup \(label)", unit: .bytes)
    defer { shown.finish() }
    sink.shown = shown
    sink.onStart = { start in
        guard let catalog else { return }
        let t = PGTimestamp(date: startDate)
        let running = BackupRecord(label: label, startLSN: start.lsn, stopLSN: start.lsn, startTime: t, stopTime: t,
                                   timeline: start.timeline, size: 0, status: .running, pgVersion: version / 10000,
                                   systemIdentifier: info.systemIdentifier)
        do { try catalog.recordBackup(running) } catch { logger.warning("warning: catalog: \(error)") }
    }
    let streamStart = Date()
    var result: BaseBackupResult
    do {
        do {
            if let parentManifest { try conn.uploadManifest(parentManifest) }
            result = try conn.baseBackup(bb, into: sink)
        } catch PGError.commandFailed(_, "42601", let message)
                    where isAutomatic(options.compression) && bb.serverCompression != nil && message.contains("does not support compression") {
            // A server built without zstd refuses the command before starting: compress here instead.
            logger.notice("backup \(label): the server cannot compress (\(message.trimmingCharacters(in: .whitespacesAndNewlines))); compressing in walctl")
            bb.serverCompression = nil
            sink.codec = .zstd
            sink.level = automaticLevel(options.compression)
            compressionText = "zstd (client)"
            result = try conn.baseBackup(bb, into: sink)
        }
    } catch {
        sink.abortAndDelete()
        markFailed(catalog, label: label, logger: logger)
        if let e = error as? PGError, let parent, let refusal = nativeRefusal(e, label: label, parent: parent.label) { throw refusal }
        if let e = error as? PGError { throw WalctlError.postgres("backup \(label) failed: \(e)") }
        if let e = error as? StoreError { throw WalctlError.store(e) }
        throw error
    }
    let streamSeconds = Date().timeIntervalSince(streamStart)
    shown.finish()
    logger.info("backup \(label): streamed \(Human.bytes(sink.storedTotal)) stored in \(Human.duration(streamSeconds)); start \(result.start.lsn) stop \(result.stop.lsn) timeline \(result.stop.timeline)")

    // Every segment from start to stop must be archived before the backup counts.
    let waitStart = Date()
    let first = SegmentID(timeline: result.start.timeline, segno: result.start.lsn.segment(size: segSize))
    let lastSegno = LSN(max(result.stop.lsn.value, 1) - 1).segment(size: segSize)
    let last = SegmentID(timeline: result.stop.timeline, segno: max(lastSegno, first.segno))
    do {
        try waitForArchive(repository: repository, first: first, last: last, size: segSize, conn: conn,
                           timeout: options.archiveTimeout, poll: options.archivePollInterval, label: label)
    } catch {
        sink.abortAndDelete()
        markFailed(catalog, label: label, logger: logger)
        throw error
    }
    let walWait = Date().timeIntervalSince(waitStart)
    let stopDate = Date()

    let size = result.bytesDone ?? sink.archives.compactMap(\.tarSize).reduce(0, +)
    var record = BackupRecord(label: label, startLSN: result.start.lsn, stopLSN: result.stop.lsn,
                              startTime: PGTimestamp(date: startDate), stopTime: PGTimestamp(date: stopDate),
                              timeline: result.start.timeline,
                              stopTimeline: result.stop.timeline == result.start.timeline ? nil : result.stop.timeline,
                              size: size, storedSize: sink.storedTotal, status: .complete,
                              pgVersion: version / 10000, systemIdentifier: info.systemIdentifier,
                              annotations: options.annotations.isEmpty ? nil : options.annotations,
                              type: parent != nil ? .incremental : .full, parent: parent?.label)
    record.databases = databaseSizes(conn, label: label, logger: logger)
    var contents = BackupContents(archives: sink.archives, manifestObject: sink.manifestSize != nil ? "backup_manifest" : nil,
                                  manifestChecksumAlgorithm: sink.manifestSize != nil ? bb.manifestChecksums : nil,
                                  manifestSize: sink.manifestSize, serverVersionNum: version, walSegmentSize: segBytes,
                                  firstWALSegment: first.fileName(size: segSize), lastWALSegment: last.fileName(size: segSize),
                                  streamSeconds: streamSeconds, walWaitSeconds: walWait, compression: compressionText)
    if parent != nil { contents.incrementalMethod = "native" }
    do {
        try repository.store.put(key: BackupMetadata.key(label: label), bytes: try BackupMetadata.encode(record, contents),
                                 options: PutOptions(ifAbsent: true))
    } catch {
        sink.abortAndDelete()
        markFailed(catalog, label: label, logger: logger)
        if let e = error as? StoreError { throw WalctlError.store(e) }
        throw error
    }
    if let catalog {
        do { try catalog.recordBackup(record) } catch { logger.warning("warning: catalog: \(error) (run walctl catalog rebuild)") }
    }
    logger.info("backup \(label): complete, \(Human.bytes(size)), \(Human.bytes(sink.storedTotal)) stored, WAL \(contents.firstWALSegment)..\(contents.lastWALSegment) archived (waited \(Human.duration(walWait)))")
    return record
}

/// The parent of the backup `type` asks for: nil for a full backup (asked for, or `incremental-or-full`
/// without a parent, logged at notice); throws `no-parent-backup` for `incremental` without one.
func chooseParent(_ type: BackupTypeRequest, repository: Repository, info: RepositoryInfo, timeline: TimeLineID,
                  pgVersion: Int, logger: Logger) throws -> BackupRecord? {
    guard type != .full else { return nil }
    let history = timeline > 1 ? try loadHistory(repository, timeline) : nil
    let all = try BackupMetadata.list(repository: repository)
    if let p = BackupChain.parent(among: all, systemIdentifier: info.systemIdentifier, pgVersion: pgVersion,
                                  timeline: timeline, history: history) {
        return p
    }
    let why = "no complete backup of system \(info.systemIdentifier), PostgreSQL \(pgVersion), on timeline \(timeline)'s history in \(repository.url) to build an incremental backup on"
    if type == .incremental {
        throw WalctlError.noParentBackup("\(why): take a full backup first (or ask for --type incremental-or-full)")
    }
    logger.notice("backup: \(why): taking a full backup instead (--type incremental-or-full)")
    return nil
}

/// The archived history file of `timeline`, nil when it is not archived.
func loadHistory(_ repository: Repository, _ timeline: TimeLineID) throws -> TimelineHistory? {
    guard let meta = try repository.meta(for: .history(timeline)) else { return nil }
    var bytes: [UInt8] = []
    try ObjectReader(repository: repository).read(meta) { bytes.append(contentsOf: $0) }
    return try TimelineHistory(timeline: timeline, text: String(decoding: bytes, as: UTF8.self))
}

/// Every database and its size, for `walctl drill`'s database check (docs/drills.md); nil with a
/// warning when the server does not answer (the backup does not depend on it).
func databaseSizes(_ conn: PGConnection, label: String, logger: Logger) -> [DatabaseSize]? {
    do {
        let r = try conn.query("SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END AS bytes FROM pg_database ORDER BY datname")
        return (0..<r.rows.count).compactMap { i in
            guard let n = r.value(i, "datname"), let b = r.value(i, "bytes").flatMap({ Int64($0) }) else { return nil }
            return DatabaseSize(name: n, bytes: b)
        }
    } catch {
        logger.warning("backup \(label): warning: could not record database sizes (walctl drill will not compare them): \(error)")
        return nil
    }
}

private func isAutomatic(_ c: BackupCompression) -> Bool {
    if case .automatic = c { return true }
    return false
}

private func automaticLevel(_ c: BackupCompression) -> Int32? {
    if case .automatic(_, let level) = c { return level }
    return nil
}

func markFailed(_ catalog: Catalog?, label: String, logger: Logger) {
    // The catalog keeps a `running` row from the start; a failed backup removes it.
    guard let catalog else { return }
    do { try catalog.removeBackup(label: label) } catch { logger.warning("warning: catalog: \(error)") }
}

/// Runs a libpq call, turning its error into `WalctlError.postgres`.
func pg<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as PGError { throw WalctlError.postgres(e.description) }
}

/// Waits until every segment `first...last` (and the timeline's history file past timeline 1) has its
/// `.meta` in the repository.
func waitForArchive(repository: Repository, first: SegmentID, last: SegmentID, size: WALSegmentSize,
                    conn: PGConnection, timeout: TimeInterval, poll: TimeInterval, label: String) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var needed: [WALFileName] = []
    for segno in first.segno...last.segno {
        // A segment before a timeline switch inside the backup may be archived on either timeline.
        needed.append(.segment(SegmentID(timeline: last.timeline, segno: segno).fileName(size: size)))
    }
    if last.timeline > 1 { needed.append(.history(last.timeline)) }
    for name in needed {
        while true {
            if try repository.meta(for: name) != nil { break }
            if first.timeline != last.timeline, let seg = name.segmentName,
               let id = SegmentID(fileName: seg, size: size),
               try repository.meta(for: .segment(SegmentID(timeline: first.timeline, segno: id.segno).fileName(size: size))) != nil {
                break
            }
            if Date() >= deadline {
                var hint = ""
                if let r = try? conn.query("SELECT last_failed_wal, last_failed_time, last_archived_wal FROM pg_stat_archiver"),
                   let lastFailed = r.value(0, "last_failed_wal") {
                    hint = "; pg_stat_archiver says the last failure was \(lastFailed) at \(r.value(0, "last_failed_time") ?? "?")"
                }
                throw WalctlError.timeout(
                    "backup \(label): WAL file \(name) was not archived into \(repository.url) within \(Int(timeout)) s (the backup needs \(first.fileName(size: size)) to \(last.fileName(size: size)))\(hint): check archive_command and the server log, or raise the archive timeout")
            }
            Thread.sleep(forTimeInterval: poll)
        }
    }
}

/// Streams each archive of a `BASE_BACKUP` into its own object, compressing when asked.
final class RepositoryBackupSink: BaseBackupSink {
    let store: ObjectStore
    let prefix: String
    var codec: CodecKind
    var level: Int32?
    var onStart: ((BackupPosition) -> Void)?
    /// Fed with the server's estimate and progress messages (PostgreSQL 15+), else with the tar
    /// bytes as they arrive.
    var shown: WorkProgress?
    private var serverReportsProgress = false

    private var writer: ObjectWriter?
    private var compressor: Compressor?
    private var current: BackupArchive?
    private var crc = CRC32C()
    private var stored: Int64 = 0
    private var raw: Int64 = 0
    /// Every key committed so far, deleted again if the backup fails.
    private(set) var committed: [String] = []
    private(set) var archives: [BackupArchive] = []
    private(set) var manifestSize: Int64?
    var storedTotal: Int64 { archives.reduce(0) { $0 + $1.storedSize } }

    /// zstd threads for client compression: the machine's cores (0 on one core: compress inline).
    static let compressionWorkers: Int = {
        let n = ProcessInfo.processInfo.activeProcessorCount
        return n > 1 ? n : 0
    }()

    init(store: ObjectStore, prefix: String, codec: CodecKind, level: Int32?) {
        self.store = store; self.prefix = prefix; self.codec = codec; self.level = level
    }

    func started(at start: BackupPosition, tablespaces: [BackupTablespace]) throws {
        let sizes = tablespaces.compactMap(\.estimatedSize)
        if !sizes.isEmpty { shown?.setTotal(sizes.reduce(0, +)) }
        onStart?(start)
    }

    func progress(bytesDone: Int64) {
        serverReportsProgress = true
        shown?.set(done: bytesDone)
    }

    /// `part`: a further archive of the same tablespace holding only files (walctl's file-level
    /// incremental stores large changed files in parts so a restore decodes them at once), stored
    /// as `<name without .tar>.part<N>.tar.<ext>`.
    func beginArchive(name: String, tablespaceLocation: String?) throws {
        try beginArchive(name: name, tablespaceLocation: tablespaceLocation, part: nil)
    }

    func beginArchive(name: String, tablespaceLocation: String?, part: Int?) throws {
        // Server-compressed archives arrive named with their codec's suffix and are stored as they are.
        var serverCodec: CodecKind?
        var tarName = name
        for c in [CodecKind.zstd, .gzip] where name.hasSuffix(".tar." + c.fileExtension) {
            serverCodec = c
            tarName = String(name.dropLast(c.fileExtension.count + 1))
        }
        guard tarName.hasSuffix(".tar") else { throw WalctlError.postgres("the server sent an archive named \(name), not a tar") }
        let base = String(tarName.dropLast(4))
        let oid = base == "base" ? nil : UInt32(base)
        guard base == "base" || oid != nil else { throw WalctlError.postgres("the server sent an unexpected archive \(name)") }
        let object: String
        if serverCodec != nil { object = name; compressor = nil }
        else {
            object = (part.map { "\(base).part\($0).tar" } ?? tarName) + (codec.fileExtension.isEmpty ? "" : "." + codec.fileExtension)
            // Client compression runs beside the reading (the server's socket, or the data directory
            // for a file-level incremental) on zstd's own threads, one per core.
            compressor = try codec.makeCompressor(level: level, workers: Self.compressionWorkers)
        }
        writer = try store.makeWriter(key: prefix + object, options: PutOptions(ifAbsent: true))
        current = BackupArchive(object: object, serverName: name, codec: (serverCodec ?? codec).rawValue,
                                compressedBy: serverCodec != nil ? "server" : "client",
                                tablespaceOID: oid, tablespaceLocation: tablespaceLocation,
                                storedSize: 0, storedCRC32C: "", tarSize: serverCodec != nil ? nil : 0, part: part)
        crc = CRC32C(); stored = 0; raw = 0
    }

    private func put(_ bytes: UnsafeRawBufferPointer) throws {
        guard let w = writer else { throw WalctlError.postgres("archive data outside an archive") }
        crc.update(bytes)
        stored += Int64(bytes.count)
        try w.write(bytes)
    }

    func archiveData(_ bytes: UnsafeRawBufferPointer) throws {
        if !serverReportsProgress, let p = shown { p.add(Int64(bytes.count)) }
        if let c = compressor {
            raw += Int64(bytes.count)
            try c.update(bytes) { try self.put($0) }
        } else {
            try put(bytes)
        }
    }

    func endArchive() throws {
        guard var a = current, let w = writer else { return }
        if let c = compressor { try c.finish { try self.put($0) } }
        try w.commit()
        committed.append(prefix + a.object)
        // What the store says the object is now (S3's ETag): a chain restore compares the listing's.
        a.storedETag = try store.head(key: prefix + a.object)?.etag
        a.storedSize = stored
        a.storedCRC32C = ArchivedFileMeta.hex(crc.value)
        if a.tarSize != nil { a.tarSize = raw }
        archives.append(a)
        current = nil; writer = nil; compressor = nil
    }

    func beginManifest() throws {
        writer = try store.makeWriter(key: prefix + "backup_manifest", options: PutOptions(ifAbsent: true))
        stored = 0
        crc = CRC32C()
    }

    func manifestData(_ bytes: UnsafeRawBufferPointer) throws { try put(bytes) }

    func endManifest() throws {
        guard let w = writer else { return }
        try w.commit()
        committed.append(prefix + "backup_manifest")
        manifestSize = stored
        writer = nil
    }

    /// Drops the object being written and deletes the committed ones (best effort).
    func abortAndDelete() {
        writer?.abort()
        writer = nil
        for k in committed { try? store.delete(key: k) }
        committed.removeAll()
    }
}
