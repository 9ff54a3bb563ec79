import CLibPQ
import WALFormat

/// Options of the `BASE_BACKUP` replication command.
public struct BaseBackupOptions: Sendable, Equatable {
    /// Server-side compression of the tar archives (PostgreSQL 15+).
    public enum ServerCompression: Sendable, Equatable {
        /// zstd inside the server at `level`; `workers` > 0 asks for zstd's own threads.
        case zstd(level: Int32, workers: Int = 0)
        /// gzip inside the server at `level`.
        case gzip(level: Int32)
    }

    /// The label recorded in `backup_label` and the backup history file.
    public var label: String
    /// Ask for an immediate checkpoint (`CHECKPOINT 'fast'`) instead of a spread one.
    public var fastCheckpoint: Bool = true
    /// Ask for the server's `backup_manifest` (PostgreSQL 13+).
    public var manifest: Bool = true
    /// The manifest's per-file checksum algorithm (`CRC32C`, `SHA256`, `NONE`, ...).
    public var manifestChecksums: String = "CRC32C"
    /// Compress inside the server; nil sends plain tar.
    public var serverCompression: ServerCompression?
    /// Let the server wait for the stop segment to be archived (`WAIT`). walctl waits itself, against its
    /// own repository and with a timeout, so it asks the server not to (`WAIT false`).
    public var waitForArchive: Bool = false
    /// Ask the server to estimate sizes first (`PROGRESS`): an extra pass over the data directory.
    public var estimateSize: Bool = false
    /// Verify data page checksums while reading (the server's default).
    public var verifyChecksums: Bool = true
    /// Limit in kB/s (`MAX_RATE`), nil for none.
    public var maxRateKBps: Int?
    /// PostgreSQL 17+ `INCREMENTAL`: only the blocks changed since the backup whose manifest was
    /// uploaded first on the same connection (`uploadManifest`); changed relation files arrive as
    /// `INCREMENTAL.<name>` members (see `IncrementalFile`).
    public var incremental: Bool = false

    public init(label: String) { self.label = label }

    /// The command text for a server of version `serverVersion` (`PG_VERSION_NUM`).
    public func command(serverVersion: Int) throws(PGError) -> String {
        guard serverVersion >= 100000 else {
            throw .unsupported("PostgreSQL \(serverVersion / 10000) is too old for walctl backup: 10 or later is needed")
        }
        if incremental && serverVersion < 170000 {
            throw .unsupported("native incremental backups need PostgreSQL 17 or later (the server is \(serverVersion / 10000))")
        }
        if serverVersion >= 150000 {
            var o: [String] = ["LABEL " + PGConnection.literal(label)]
            if incremental { o.append("INCREMENTAL") }
            if estimateSize { o.append("PROGRESS") }
            if fastCheckpoint { o.append("CHECKPOINT 'fast'") }
            o.append("WAIT " + (waitForArchive ? "true" : "false"))
            if !verifyChecksums { o.append("VERIFY_CHECKSUMS false") }
            if let r = maxRateKBps { o.append("MAX_RATE \(r)") }
            if manifest {
                o.append("MANIFEST 'yes'")
                o.append("MANIFEST_CHECKSUMS " + PGConnection.literal(manifestChecksums))
            }
            switch serverCompression {
            case .none: break
            case .zstd(let level, let workers)?:
                o.append("COMPRESSION 'zstd'")
                o.append("COMPRESSION_DETAIL " + PGConnection.literal(
                    "level=\(level)" + (workers > 0 ? ",workers=\(workers)" : "")))
            case .gzip(let level)?:
                o.append("COMPRESSION 'gzip'")
                o.append("COMPRESSION_DETAIL " + PGConnection.literal("level=\(level)"))
            }
            return "BASE_BACKUP (" + o.joined(separator: ", ") + ")"
        }
        // Before 15: bare keywords, no server-side compression.
        if serverCompression != nil {
            throw .unsupported("server-side compression needs PostgreSQL 15 or later (the server is \(serverVersion / 10000))")
        }
        var o: [String] = ["LABEL " + PGConnection.literal(label)]
        if estimateSize { o.append("PROGRESS") }
        if fastCheckpoint { o.append("FAST") }
        if !waitForArchive { o.append("NOWAIT") }
        if let r = maxRateKBps { o.append("MAX_RATE \(r)") }
        if !verifyChecksums { o.append("NOVERIFY_CHECKSUMS") }
        if manifest && serverVersion >= 130000 {
            o.append("MANIFEST 'yes'")
            o.append("MANIFEST_CHECKSUMS " + PGConnection.literal(manifestChecksums))
        }
        return "BASE_BACKUP " + o.joined(separator: " ")
    }
}

/// A tablespace as the server lists it at the start of a backup.
public struct BackupTablespace: Sendable, Equatable, Codable {
    /// The tablespace OID, nil for the main data directory.
    public var oid: UInt32?
    /// Its location on the server, nil for the main data directory.
    public var location: String?
    /// Estimated size in bytes when `PROGRESS` was asked, else nil.
    public var estimatedSize: Int64?
}

/// The WAL position at which the backup starts or ends.
public struct BackupPosition: Sendable, Equatable {
    public var lsn: LSN
    public var timeline: TimeLineID
}

/// Receives a base backup's stream. Every method may throw to abandon the backup: the connection is
/// then closed, which makes the server abort the backup.
///
/// Order: `started`, then for each archive `beginArchive`, `archiveData`*, `endArchive`; then, when a
/// manifest was asked, `beginManifest`, `manifestData`*, `endManifest`. `progress` may come anywhere
/// in between.
public protocol BaseBackupSink: AnyObject {
    /// The backup started: the checkpoint is done and the server is about to send files.
    func started(at start: BackupPosition, tablespaces: [BackupTablespace]) throws
    /// A new tar archive: `name` is `base.tar` or `<oid>.tar`, with the compression's suffix
    /// (`base.tar.zst`, `base.tar.gz`) when the server compresses; `tablespaceLocation` is nil for base.
    func beginArchive(name: String, tablespaceLocation: String?) throws
    /// A chunk of the current archive, valid only during the call.
    func archiveData(_ bytes: UnsafeRawBufferPointer) throws
    /// The current archive is complete.
    func endArchive() throws
    /// The manifest follows.
    func beginManifest() throws
    /// A chunk of the manifest, valid only during the call.
    func manifestData(_ bytes: UnsafeRawBufferPointer) throws
    /// The manifest is complete.
    func endManifest() throws
    /// Uncompressed bytes the server has read so far.
    func progress(bytesDone: Int64)
}

extension BaseBackupSink {
    public func progress(bytesDone: Int64) {}
}

/// What a finished `BASE_BACKUP` reports.
public struct BaseBackupResult: Sendable, Equatable {
    public var start: BackupPosition
    public var stop: BackupPosition
    public var tablespaces: [BackupTablespace]
    /// Uncompressed bytes read by the server, from its last progress message (PostgreSQL 15+), else nil.
    public var bytesDone: Int64?
}

extension PGConnection {
    /// Runs `BASE_BACKUP` on a replication connection and streams the archives and manifest to `sink`.
    ///
    /// Memory stays bounded: each CopyData message (tens of kB) is handed to the sink and freed.
    /// Errors from the sink are rethrown unchanged; server errors become `PGError`. After any error
    /// the connection is unusable: drop it.
    public func baseBackup(_ options: BaseBackupOptions, into sink: BaseBackupSink) throws -> BaseBackupResult {
        let version = serverVersion
        let command = try options.command(serverVersion: version)
        guard PQsendQuery(conn, command) == 1 else { throw PGError.connectionLost(lastError) }

        // 1. Start position.
        let startRows = try nextRows(command)
        let start = try Self.position(startRows, what: "start")
        // 2. Tablespace list.
        let tsRows = try nextRows(command)
        var tablespaces: [BackupTablespace] = []
        for row in tsRows.rows {
            guard row.count >= 2 else { throw PGError.protocolViolation("tablespace row \(row)") }
            let size = row.count >= 3 ? row[2].flatMap { Int64($0) }.map { $0 * 1024 } : nil
            tablespaces.append(BackupTablespace(oid: row[0].flatMap { UInt32($0) }, location: row[1], estimatedSize: size))
        }
        try sink.started(at: start, tablespaces: tablespaces)

        var bytesDone: Int64?
        var stopRows: QueryResult?
        if version >= 150000 {
            (bytesDone, stopRows) = try receiveCopyStream(command, sink)
        } else {
            try receiveLegacyStreams(command, tablespaces: tablespaces, manifest: options.manifest && version >= 130000, sink)
        }
        // 3. Stop position (unless it came right after the COPY), then the end of the command.
        if stopRows == nil { stopRows = try nextRows(command) }
        guard let stopRows else { throw PGError.protocolViolation("BASE_BACKUP sent no stop position") }
        let stop = try Self.position(stopRows, what: "stop")
        while let res = PQgetResult(conn) {
            defer { PQclear(res) }
            _ = try Self.rows(of: res, command: command, connection: self)
        }
        return BaseBackupResult(start: start, stop: stop, tablespaces: tablespaces, bytesDone: bytesDone)
    }

    /// `UPLOAD_MANIFEST` (PostgreSQL 17+, replication sessions): sends `manifest`, the
    /// `backup_manifest` of the backup the next `BASE_BACKUP (INCREMENTAL)` on this connection builds
    /// on, as a COPY IN stream, the way `pg_basebackup --incremental` does. The server parses it at
    /// once: a manifest it cannot use is refused here (see `IncrementalRefusal`).
    public func uploadManifest(_ manifest: [UInt8]) throws(PGError) {
        guard serverVersion >= 170000 else {
            throw .unsupported("UPLOAD_MANIFEST needs PostgreSQL 17 or later (the server is \(serverMajorVersion))")
        }
        let command = "UPLOAD_MANIFEST"
        guard let res = PQexec(conn, command) else { throw .connectionLost(lastError) }
        let st = PQresultStatus(res)
        if st != PGRES_COPY_IN {
            defer { PQclear(res) }
            _ = try Self.rows(of: res, command: command, connection: self)
            throw .protocolViolation("UPLOAD_MANIFEST answered \(String(cString: PQresStatus(st))) where a COPY IN was expected")
        }
        PQclear(res)
        let chunk = 64 << 10
        var offset = 0
        var sendError: String?
        manifest.withUnsafeBufferPointer { buf in
            while offset < buf.count {
                let n = min(chunk, buf.count - offset)
                let ok = buf.baseAddress!.advanced(by: offset).withMemoryRebound(to: CChar.self, capacity: n) {
                    PQputCopyData(conn, $0, Int32(n))
                }
                if ok != 1 { sendError = lastError; return }
                offset += n
            }
        }
        if let sendError { throw .connectionLost(sendError) }
        guard PQputCopyEnd(conn, nil) == 1 else { throw .connectionLost(lastError) }
        // The COPY's completion, then the command's end.
        var failure: PGError?
        while let r = PQgetResult(conn) {
            defer { PQclear(r) }
            let s = PQresultStatus(r)
            if failure == nil, s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE || s == PGRES_NONFATAL_ERROR {
                failure = Self.error(from: r, command: command, connection: self)
            } else if failure == nil, s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK {
                failure = .protocolViolation("UPLOAD_MANIFEST ended with \(String(cString: PQresStatus(s)))")
            }
        }
        if let failure { throw failure }
    }

    /// The next result of a running command, which must carry rows.
    func nextRows(_ command: String) throws(PGError) -> QueryResult {
        guard let res = PQgetResult(conn) else {
            throw .protocolViolation("\(Self.commandName(command)) ended early")
        }
        defer { PQclear(res) }
        if PQresultStatus(res) == PGRES_COPY_OUT {
            throw .protocolViolation("\(Self.commandName(command)) started a COPY where rows were expected")
        }
        do {
            return try Self.rows(of: res, command: command, connection: self)
        } catch {
            // The command failed: read its remaining results so the connection can run another one.
            while let more = PQgetResult(conn) { PQclear(more) }
            throw error
        }
    }

    static func position(_ r: QueryResult, what: String) throws(PGError) -> BackupPosition {
        guard r.rows.count == 1, r.rows[0].count >= 2,
              let lsn = r.rows[0][0].flatMap({ LSN($0) }),
              let tli = r.rows[0][1].flatMap({ UInt32($0) }) else {
            throw .protocolViolation("BASE_BACKUP \(what) position row is \(r.rows)")
        }
        return BackupPosition(lsn: lsn, timeline: tli)
    }

    /// Expects the next result to start a COPY OUT.
    func expectCopyOut(_ command: String) throws(PGError) {
        guard let res = PQgetResult(conn) else { throw .protocolViolation("BASE_BACKUP ended before its data") }
        defer { PQclear(res) }
        let st = PQresultStatus(res)
        if st == PGRES_COPY_OUT { return }
        _ = try Self.rows(of: res, command: command, connection: self)
        throw .protocolViolation("BASE_BACKUP sent \(String(cString: PQresStatus(st))) where a COPY stream was expected")
    }

    /// Reads CopyData messages until the end of the COPY. `each` gets the payload of every message.
    /// Returns the rows of the result that follows the COPY when it has rows (PostgreSQL 15+ sends
    /// the stop position right after CopyDone), nil when it is the COPY's own completion.
    @discardableResult
    func readCopy(_ command: String, _ each: (UnsafeRawBufferPointer) throws -> Void) throws -> QueryResult? {
        var buffer: UnsafeMutablePointer<CChar>?
        while true {
            let n = PQgetCopyData(conn, &buffer, 0)
            if n > 0, let b = buffer {
                defer { PQfreemem(b) }
                try each(UnsafeRawBufferPointer(start: b, count: Int(n)))
            } else if n == -1 {
                // End of the COPY: its own result tells whether the server failed.
                if let res = PQgetResult(conn) {
                    defer { PQclear(res) }
                    let st = PQresultStatus(res)
                    if st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR {
                        throw Self.error(from: res, command: command, connection: self)
                    }
                    if st == PGRES_TUPLES_OK { return try Self.rows(of: res, command: command, connection: self) }
                    if st != PGRES_COMMAND_OK {
                        throw PGError.protocolViolation("after COPY: \(String(cString: PQresStatus(st)))")
                    }
                }
                return nil
            } else {
                throw PGError.connectionLost(lastError)
            }
        }
    }

    /// PostgreSQL 15+: one COPY stream, each message tagged `n` (new archive), `d` (data),
    /// `p` (progress) or `m` (manifest follows). Returns the last progress count.
    func receiveCopyStream(_ command: String, _ sink: BaseBackupSink) throws -> (Int64?, QueryResult?) {
        try expectCopyOut(command)
        enum State { case none, archive, manifest }
        var state = State.none
        var bytesDone: Int64?
        func close() throws {
            switch state {
            case .archive: try sink.endArchive()
            case .manifest: try sink.endManifest()
            case .none: break
            }
        }
        let after = try readCopy(command) { msg in
            guard let tag = msg.first else { throw PGError.protocolViolation("empty CopyData message") }
            let body = UnsafeRawBufferPointer(rebasing: msg[1...])
            switch tag {
            case UInt8(ascii: "d"):
                switch state {
                case .archive: try sink.archiveData(body)
                case .manifest: try sink.manifestData(body)
                case .none: throw PGError.protocolViolation("archive data before any archive header")
                }
            case UInt8(ascii: "n"):
                let (name, location) = try Self.parseNewArchive(body)
                try close()
                state = .archive
                try sink.beginArchive(name: name, tablespaceLocation: location.isEmpty ? nil : location)
            case UInt8(ascii: "m"):
                try close()
                state = .manifest
                try sink.beginManifest()
            case UInt8(ascii: "p"):
                guard body.count == 8 else { throw PGError.protocolViolation("progress message of \(body.count) bytes") }
                var v: UInt64 = 0
                for b in body { v = v << 8 | UInt64(b) }
                bytesDone = Int64(bitPattern: v)
                sink.progress(bytesDone: bytesDone!)
            default:
                throw PGError.protocolViolation("unknown CopyData message type \(tag)")
            }
        }
        try close()
        return (bytesDone, after)
    }

    /// Parses the body of an `n` message: archive name and tablespace location, each NUL-terminated.
    public static func parseNewArchive(_ body: UnsafeRawBufferPointer) throws(PGError) -> (name: String, location: String) {
        guard let z1 = body.firstIndex(of: 0) else { throw .protocolViolation("new-archive message without a name") }
        let rest = body[(z1 + 1)...]
        guard let z2 = rest.firstIndex(of: 0) else { throw .protocolViolation("new-archive message without a location") }
        let name = String(decoding: body[..<z1], as: UTF8.self)
        let loc = String(decoding: body[(z1 + 1)..<z2], as: UTF8.self)
        // The name becomes an object key: only the forms the server produces are accepted.
        guard !name.isEmpty, !name.contains("/"), name != "..", !name.hasPrefix(".") else {
            throw .protocolViolation("archive name \(name)")
        }
        return (name, loc)
    }

    /// Before PostgreSQL 15: one COPY stream per tablespace (plain tar), then one for the manifest.
    /// Not exercised by the test matrix (15, 16, 18).
    func receiveLegacyStreams(_ command: String, tablespaces: [BackupTablespace], manifest: Bool,
                              _ sink: BaseBackupSink) throws {
        for ts in tablespaces {
            try expectCopyOut(command)
            try sink.beginArchive(name: ts.oid.map { "\($0).tar" } ?? "base.tar", tablespaceLocation: ts.location)
            try readCopy(command) { try sink.archiveData($0) }
            try sink.endArchive()
        }
        if manifest {
            try expectCopyOut(command)
            try sink.beginManifest()
            try readCopy(command) { try sink.manifestData($0) }
            try sink.endManifest()
        }
    }
}
