import Catalog
import Codec
import Foundation
import Logging
import LocalFS
import PGClient
import Storage
import WALFormat

/// A file-level incremental backup (docs/backup.md), for PostgreSQL before 17 (no WAL summaries) and
/// any version when the native path is not chosen: walctl runs on the database host, opens a normal
/// session, `pg_backup_start(label, fast)` (non-exclusive: the session stays open until
/// `pg_backup_stop`), walks the data directory and the tablespaces with PostgreSQL's own exclusions,
/// and for each file: when its size and modification time equal the parent's manifest entry AND its
/// CRC-32C equals the manifest's checksum, it is referenced (the member that stores it is recorded in
/// `contents.references`); otherwise it is stored whole in this backup's tar archives (the same tar +
/// codec objects as a full backup, so restore shares the code). `pg_backup_stop` gives the
/// `backup_label`, stored in the base archive. walctl writes the `backup_manifest` (PostgreSQL's format)
/// of the whole resulting data directory, then waits for the WAL from start to stop to be archived,
/// then commits `backup.json` — exactly as a full backup.
func takeFileIncrementalBackup(conninfo: String, repository: Repository, info: RepositoryInfo, label: String, parent: BackupRecord,
                               segSize: WALSegmentSize, serverVersion: Int, startDate: Date, options: BackupOptions,
                               catalog: Catalog?, logger: Logger, progress: ProgressOutput) throws -> BackupRecord {
    // The parent's manifest, and who stores each of its files.
    let (_, parentContents) = try BackupMetadata.read(label: parent.label, repository: repository)
    guard let pmObject = parentContents.manifestObject,
          let pmBytes = try repository.store.get(key: BackupMetadata.prefix(label: parent.label) + pmObject) else {
        throw WalctlError.noParentBackup("backup \(parent.label) has no backup_manifest: an incremental backup cannot be built on it; take a full backup")
    }
    let parentManifest = try ServerManifest(json: pmBytes)
    let parentRefs = parentContents.references ?? [:]

    let conn = try pg { try PGConnection(conninfo: conninfo) }
    let major = serverVersion / 10000
    // The data directory: the pgdata setting, else the server's own; walctl must read it here.
    var pgdata = options.pgdata ?? ""
    if pgdata.isEmpty { pgdata = try pg { try conn.show("data_directory") } }
    while pgdata.count > 1 && pgdata.hasSuffix("/") { pgdata.removeLast() }
    if access(pgdata + "/global/pg_control", R_OK) != 0 || access(pgdata, R_OK | X_OK) != 0 {
        throw WalctlError.refused(
            "a file-level incremental backup reads the data directory itself, and \(pgdata) is not readable here (\(String(cString: strerror(errno)))): run walctl backup --type incremental on the database host as the data directory's owner (set pgdata if the path differs), or take a full backup (docs/backup.md)")
    }
    // The same cluster: pg_control's system identifier.
    if let control = try systemIdentifierBytes(pgdata + "/global/pg_control") {
        let sid = control.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard String(sid) == info.systemIdentifier else {
            throw WalctlError.refused("\(pgdata) is the data directory of database system \(sid), not of \(info.systemIdentifier) this repository is bound to: set pgdata to the server's data directory")
        }
    }
    let catversion = try pg { try conn.query("SELECT catalog_version_no FROM pg_control_system()") }.value(0, "catalog_version_no") ?? ""
    let versionDir = "PG_\(major)_\(catversion)"

    var clientCodec = CodecKind.zstd
    var clientLevel: Int32?
    switch options.compression {
    case .server(let level): clientLevel = level
    case .client(let c, let level), .automatic(let c, let level): clientCodec = c; clientLevel = level
    }
    let prefix = BackupMetadata.prefix(label: label)
    let sink = RepositoryBackupSink(store: repository.store, prefix: prefix, codec: clientCodec, level: clientLevel)
    let shown = progress.start("backup \(label)", unit: .bytes)
    defer { shown.finish() }
    sink.shown = shown
    sink.progress(bytesDone: 0)  // walctl reports the bytes it reads, not the tar bytes

    logger.info("backup \(label): incremental on \(parent.label) (file-level), reading \(pgdata) on this host, PostgreSQL \(serverVersion), compression \(clientCodec.rawValue) (client)")
    let streamStart = Date()
    let fast = options.fastCheckpoint ? "true" : "false"
    let startSQL = serverVersion >= 150000 ? "SELECT pg_backup_start('walctl \(label)', \(fast))"
        : "SELECT pg_start_backup('walctl \(label)', \(fast), false)"
    _ = try pg { try conn.query(startSQL) }
    var started = true
    func abort() {
        sink.abortAndDelete()
        if started {
            _ = try? conn.query(serverVersion >= 150000 ? "SELECT pg_backup_stop(false)" : "SELECT pg_stop_backup(false, false)")
            started = false
        }
        markFailed(catalog, label: label, logger: logger)
    }

    var manifestEntries: [ManifestWriter.Entry] = []
    var references: [String: String] = [:]
    var readBytes: Int64 = 0
    var referencedBytes: Int64 = 0
    let labelText: String, stopLSN: LSN
    do {
        let base = try DataDirectoryWalk.dataDirectory(pgdata)
        var tablespaces: [(oid: UInt32, location: String, entries: [DataEntry])] = []
        for e in base where e.kind == .symlink {
            guard let oid = UInt32(e.path.dropFirst("pg_tblspc/".count)) else { continue }
            let loc = e.linkTarget.hasPrefix("/") ? e.linkTarget : pgdata + "/pg_tblspc/" + e.linkTarget
            tablespaces.append((oid, e.linkTarget, try DataDirectoryWalk.tablespace(loc, versionDirectory: versionDir)))
        }
        let total = (base + tablespaces.flatMap(\.entries)).reduce(Int64(0)) { $0 + $1.size }
        shown.setTotal(total)
        let writer = IncrementalArchiveWriter(sink: sink, parentManifest: parentManifest, parentLabel: parent.label,
                                              parentRefs: parentRefs, shown: shown)
        for t in tablespaces {
            try sink.beginArchive(name: "\(t.oid).tar", tablespaceLocation: t.location)
            for e in t.entries { try writer.add(e, manifestPath: "pg_tblspc/\(t.oid)/" + e.path) }
            try writer.endArchive()
        }
        // Large files first, and those that changed into parts (`base.part<N>.tar`, files only) of
        // about equal size, one per core: a restore decodes a member's archives at once, so the
        // chain (or a --delta over its full backup) is not bound by one zstd stream of every
        // changed table. The parts' size comes from the large files whose size or time differ from
        // the parent's (changed for certain); when more turns out changed, the last part takes it.
        let isLarge = { (e: DataEntry) in e.kind == .file && e.size >= IncrementalArchiveWriter.partFileSize }
        let large = base.filter(isLarge)
        let parts = max(1, min(RepositoryBackupSink.compressionWorkers, 8))
        let certain = large.reduce(Int64(0)) { sum, e in
            let pm = parentManifest.files[e.path]
            return pm?.size == e.size && pm?.lastModified == ManifestWriter.lastModified(e.mtime) ? sum : sum + e.size
        }
        let partTarget = parts > 1 ? max(1, (certain + Int64(parts) - 1) / Int64(parts)) : Int64.max
        var part = 0, partBytes: Int64 = 0
        writer.beforeStore = { [unowned writer] e in
            if part == 0 || (partBytes >= partTarget && part < parts) {
                if part > 0 { try writer.endArchive() }
                part += 1; partBytes = 0
                try sink.beginArchive(name: "base.tar", tablespaceLocation: nil, part: part)
            }
            partBytes += e.size
        }
        for e in large { try writer.add(e, manifestPath: e.path) }
        if part > 0 { try writer.endArchive() }
        writer.beforeStore = nil
        try sink.beginArchive(name: "base.tar", tablespaceLocation: nil)
        // backup_label comes at the end here (pg_backup_stop gives it), which a restore does not mind.
        for e in base where !isLarge(e) { try writer.add(e, manifestPath: e.path) }
        let stop = try pg { try conn.query(serverVersion >= 150000 ? "SELECT lsn, labelfile FROM pg_backup_stop(false)"
                                                                    : "SELECT lsn, labelfile FROM pg_stop_backup(false, false)") }
        started = false
        guard let lsnText = stop.value(0, "lsn"), let l = LSN(lsnText), let lf = stop.value(0, "labelfile") else {
            throw WalctlError.postgres("pg_backup_stop returned no stop location or backup_label")
        }
        stopLSN = l; labelText = lf
        try writer.addContent("backup_label", Array(labelText.utf8))
        try writer.endArchive()
        manifestEntries = writer.manifest
        references = writer.references
        readBytes = writer.readBytes
        referencedBytes = writer.referencedBytes
    } catch {
        abort()
        if let e = error as? PGError { throw WalctlError.postgres("backup \(label) failed: \(e)") }
        if let e = error as? StoreError { throw WalctlError.store(e) }
        throw error
    }
    let bl: BackupLabel
    do { bl = try BackupLabel(text: labelText) } catch {
        abort()
        throw WalctlError.postgres("backup \(label): the server's backup_label is unreadable: \(error)")
    }
    let startTL = bl.startTimeline ?? parent.timeline
    let manifest = ManifestWriter.render(files: manifestEntries, timeline: startTL, start: bl.startLSN, end: stopLSN)
    do {
        try sink.beginManifest()
        try manifest.withUnsafeBytes { try sink.manifestData($0) }
        try sink.endManifest()
    } catch {
        abort()
        if let e = error as? StoreError { throw WalctlError.store(e) }
        throw error
    }
    let streamSeconds = Date().timeIntervalSince(streamStart)
    shown.finish()
    logger.info("backup \(label): read \(Human.bytes(readBytes)), \(references.count) file(s) (\(Human.bytes(referencedBytes))) unchanged since \(parent.label), \(Human.bytes(sink.storedTotal)) stored in \(Human.duration(streamSeconds)); start \(bl.startLSN) stop \(stopLSN) timeline \(startTL)")

    let waitStart = Date()
    let first = SegmentID(timeline: startTL, segno: bl.startLSN.segment(size: segSize))
    let lastSegno = LSN(max(stopLSN.value, 1) - 1).segment(size: segSize)
    let last = SegmentID(timeline: startTL, segno: max(lastSegno, first.segno))
    do {
        try waitForArchive(repository: repository, first: first, last: last, size: segSize, conn: conn,
                           timeout: options.archiveTimeout, poll: options.archivePollInterval, label: label)
    } catch {
        abort()
        throw error
    }
    let walWait = Date().timeIntervalSince(waitStart)
    var record = BackupRecord(label: label, startLSN: bl.startLSN, stopLSN: stopLSN,
                              startTime: PGTimestamp(date: startDate), stopTime: PGTimestamp(date: Date()),
                              timeline: startTL, checkpointLSN: bl.checkpointLSN,
                              size: manifestEntries.reduce(0) { $0 + $1.size }, storedSize: sink.storedTotal, status: .complete,
                              pgVersion: major, systemIdentifier: info.systemIdentifier,
                              annotations: options.annotations.isEmpty ? nil : options.annotations,
                              type: .incremental, parent: parent.label)
    record.databases = databaseSizes(conn, label: label, logger: logger)
    var contents = BackupContents(archives: sink.archives, manifestObject: "backup_manifest", manifestChecksumAlgorithm: "CRC32C",
                                  manifestSize: sink.manifestSize, serverVersionNum: serverVersion, walSegmentSize: segSize.bytes,
                                  firstWALSegment: first.fileName(size: segSize), lastWALSegment: last.fileName(size: segSize),
                                  streamSeconds: streamSeconds, walWaitSeconds: walWait, compression: clientCodec.rawValue + " (client)")
    contents.incrementalMethod = "file"
    contents.references = references
    do {
        try repository.store.put(key: BackupMetadata.key(label: label), bytes: try BackupMetadata.encode(record, contents),
                                 options: PutOptions(ifAbsent: true))
    } catch {
        abort()
        if let e = error as? StoreError { throw WalctlError.store(e) }
        throw error
    }
    if let catalog {
        do { try catalog.recordBackup(record) } catch { logger.warning("warning: catalog: \(error) (run walctl catalog rebuild)") }
    }
    logger.info("backup \(label): complete, incremental on \(parent.label): \(Human.bytes(record.size)) data directory, \(Human.bytes(sink.storedTotal)) stored, WAL \(contents.firstWALSegment)..\(contents.lastWALSegment) archived (waited \(Human.duration(walWait)))")
    return record
}

/// Turns the walked entries into tar members (changed files) or references (unchanged files).
final class IncrementalArchiveWriter {
    let sink: RepositoryBackupSink
    let parentManifest: ServerManifest
    let parentLabel: String
    let parentRefs: [String: String]
    let shown: WorkProgress
    private(set) var manifest: [ManifestWriter.Entry] = []
    private(set) var references: [String: String] = [:]
    private(set) var readBytes: Int64 = 0
    private(set) var referencedBytes: Int64 = 0
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    /// Files this large go to the base tablespace's parts when they changed (relation segments).
    static let partFileSize: Int64 = 1 << 20
    /// Called before a changed file is stored (the caller opens or rotates the archive it goes to).
    var beforeStore: ((DataEntry) throws -> Void)?

    init(sink: RepositoryBackupSink, parentManifest: ServerManifest, parentLabel: String, parentRefs: [String: String], shown: WorkProgress) {
        self.sink = sink; self.parentManifest = parentManifest; self.parentLabel = parentLabel
        self.parentRefs = parentRefs; self.shown = shown
    }

    private func emit(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sink.archiveData($0) }
    }

    func add(_ e: DataEntry, manifestPath: String) throws {
        switch e.kind {
        case .directory, .symlink:
            try emit(TarWriter.header(path: e.path, kind: e.kind, mode: e.mode, size: 0, mtime: e.mtime, linkTarget: e.linkTarget))
            return
        case .file: break
        default: return
        }
        let lm = ManifestWriter.lastModified(e.mtime)
        if !BackupExclusions.selfChecksummed(manifestPath), let pm = parentManifest.files[manifestPath], pm.size == e.size, pm.lastModified == lm,
           pm.algorithm == "CRC32C", let expected = pm.checksum {
            // Same size and time: the checksum decides (a file rewritten within the same second).
            guard let crc = try checksum(e) else { return }  // vanished: PostgreSQL skips it too
            if crc == expected {
                references[manifestPath] = parentRefs[manifestPath] ?? parentLabel
                referencedBytes += e.size
                manifest.append(.init(path: manifestPath, size: e.size, lastModified: lm, checksum: expected))
                return
            }
        }
        try store(e, manifestPath: manifestPath, lastModified: lm)
    }

    /// A file walctl makes (backup_label), stored in the current archive.
    func addContent(_ path: String, _ bytes: [UInt8]) throws {
        let now = Int64(Date().timeIntervalSince1970)
        try emit(TarWriter.header(path: path, kind: .file, mode: 0o600, size: Int64(bytes.count), mtime: now))
        try emit(bytes)
        try emit([UInt8](repeating: 0, count: TarWriter.padding(Int64(bytes.count))))
        var crc = CRC32C()
        bytes.withUnsafeBytes { crc.update($0) }
        manifest.append(.init(path: path, size: Int64(bytes.count), lastModified: ManifestWriter.lastModified(now),
                              checksum: ServerManifest.crc32cHex(crc.value)))
    }

    func endArchive() throws {
        try emit(TarWriter.end)
        try sink.endArchive()
    }

    /// The CRC-32C (manifest text) of the file's first `size` bytes, zero-padded if it shrank; nil
    /// when it no longer exists.
    private func checksum(_ e: DataEntry) throws -> String? {
        var crc = CRC32C()
        guard try read(e, { crc.update($0) }) else { return nil }
        return ServerManifest.crc32cHex(crc.value)
    }

    private func store(_ e: DataEntry, manifestPath: String, lastModified: String) throws {
        try beforeStore?(e)
        var crc = CRC32C()
        var headerWritten = false
        let ok = try read(e) { chunk in
            if !headerWritten {
                try emit(TarWriter.header(path: e.path, kind: .file, mode: e.mode, size: e.size, mtime: e.mtime))
                headerWritten = true
            }
            crc.update(chunk)
            try sink.archiveData(chunk)
        }
        guard ok else { return }
        if !headerWritten {  // an empty file
            try emit(TarWriter.header(path: e.path, kind: .file, mode: e.mode, size: 0, mtime: e.mtime))
        }
        try emit([UInt8](repeating: 0, count: TarWriter.padding(e.size)))
        manifest.append(.init(path: manifestPath, size: e.size, lastModified: lastModified, checksum: ServerManifest.crc32cHex(crc.value)))
    }

    /// Reads exactly `e.size` bytes of the file (zeros past a shrunk end, as PostgreSQL's base
    /// backup does), handing each chunk to `body`. False when the file is gone.
    private func read(_ e: DataEntry, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        let fd = open(e.fullPath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return false }
            throw WalctlError.file(operation: "open", path: e.fullPath, errno: errno)
        }
        defer { close(fd) }
        var left = e.size
        var eof = false
        while left > 0 {
            let want = Int(min(Int64(buffer.count), left))
            var n = 0
            if !eof {
                n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, want) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw WalctlError.file(operation: "read", path: e.fullPath, errno: errno)
                }
                if n == 0 { eof = true }
            }
            if eof {
                n = want
                for i in 0..<n { buffer[i] = 0 }
            }
            try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            left -= Int64(n)
            readBytes += Int64(n)
            shown.add(Int64(n))
        }
        return true
    }
}
