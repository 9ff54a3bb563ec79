import CLibPQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WALFormat

/// How a connection talks to the server: an ordinary SQL session, or a replication session.
public enum ReplicationMode: String, Sendable {
    /// `replication=database`: replication commands plus SQL, connected to one database.
    case database
    /// `replication=true`: physical replication commands only (`IDENTIFY_SYSTEM`, `BASE_BACKUP`, `SHOW`).
    case physical = "true"
}

/// The rows of one simple query, every value in PostgreSQL's text format (nil for SQL NULL).
public struct QueryResult: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[String?]]
    public init(columns: [String], rows: [[String?]]) { self.columns = columns; self.rows = rows }

    /// The value at `row`, `column` name, or nil when absent or NULL.
    public func value(_ row: Int, _ column: String) -> String? {
        guard row < rows.count, let c = columns.firstIndex(of: column), c < rows[row].count else { return nil }
        return rows[row][c]
    }
}

/// What `IDENTIFY_SYSTEM` answers.
public struct SystemIdentification: Sendable, Equatable {
    /// The database system identifier from pg_control (`Database system identifier` in pg_controldata).
    public var systemIdentifier: UInt64
    /// The server's current timeline.
    public var timeline: TimeLineID
    /// The current WAL flush location.
    public var xlogPosition: LSN
    /// The database of a `replication=database` session, nil for `replication=true`.
    public var database: String?
}

/// One libpq connection. Not thread-safe: use it from one thread at a time.
///
/// The connection string is libpq's standard conninfo (`host=... dbname=...` or a
/// `postgresql://` URI); anything it leaves out comes from the `PG*` environment variables
/// (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, ...) and `~/.pgpass`, exactly as for
/// `psql`. An empty string means "everything from the environment".
public final class PGConnection {
    let conn: OpaquePointer

    /// Opens a connection.
    /// - Parameters:
    ///   - conninfo: a conninfo string or URI, possibly empty.
    ///   - replication: asks for a replication session; overrides any `replication=` in `conninfo`.
    ///   - applicationName: `fallback_application_name`, shown in `pg_stat_activity` unless the
    ///     conninfo or `PGAPPNAME` sets one.
    public init(conninfo: String = "", replication: ReplicationMode? = nil,
                applicationName: String = "walctl") throws(PGError) {
        var keys = ["dbname", "fallback_application_name"]
        var values = [conninfo, applicationName]
        if let replication { keys.append("replication"); values.append(replication.rawValue) }
        let ck = keys.map { strdup($0) }
        let cv = values.map { strdup($0) }
        defer { ck.forEach { free($0) }; cv.forEach { free($0) } }
        let kp: [UnsafePointer<CChar>?] = ck.map { UnsafePointer($0) } + [nil]
        let vp: [UnsafePointer<CChar>?] = cv.map { UnsafePointer($0) } + [nil]
        guard let c = PQconnectdbParams(kp, vp, 1) else {
            // libpq is loaded on first use (CLazyLoad): NULL also means it could not be loaded.
            throw .connectionFailed(target: "?", message: walctl_libpq_load_error().map { String(cString: $0) }
                                        ?? "libpq could not allocate a connection")
        }
        if PQstatus(c) != CONNECTION_OK {
            let message = String(cString: PQerrorMessage(c))
            let target = Self.describe(c)
            PQfinish(c)
            throw .connectionFailed(target: target, message: message)
        }
        conn = c
    }

    deinit { PQfinish(conn) }

    /// `host=... port=... user=... dbname=...` of this connection, never the password.
    public var target: String { Self.describe(conn) }

    static func describe(_ c: OpaquePointer) -> String {
        func s(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        var host = s(PQhost(c))
        if host.isEmpty { host = "(default socket)" }
        return "host=\(host) port=\(s(PQport(c))) user=\(s(PQuser(c))) dbname=\(s(PQdb(c)))"
    }

    /// The server's version as `PG_VERSION_NUM` (150018 for 15.18, 180006 for 18.6).
    public var serverVersion: Int { Int(PQserverVersion(conn)) }

    /// The major version (15, 16, 18, ...).
    public var serverMajorVersion: Int { serverVersion / 10000 }

    /// The last error libpq recorded on this connection.
    var lastError: String { String(cString: PQerrorMessage(conn)) }

    /// Runs one simple-protocol command and returns its rows (empty for commands without rows).
    public func query(_ sql: String) throws(PGError) -> QueryResult {
        guard let res = PQexec(conn, sql) else {
            throw .connectionLost(lastError)
        }
        defer { PQclear(res) }
        return try Self.rows(of: res, command: sql, connection: self)
    }

    /// Extracts rows from a result, or throws the error it carries.
    static func rows(of res: OpaquePointer, command: String, connection: PGConnection) throws(PGError) -> QueryResult {
        let st = PQresultStatus(res)
        switch st {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            break
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE:
            throw error(from: res, command: command, connection: connection)
        default:
            throw .protocolViolation("\(commandName(command)) returned \(String(cString: PQresStatus(st)))")
        }
        let nf = Int(PQnfields(res)), nt = Int(PQntuples(res))
        var columns: [String] = []
        columns.reserveCapacity(nf)
        for f in 0..<nf { columns.append(String(cString: PQfname(res, Int32(f)))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(nt)
        for t in 0..<nt {
            var row: [String?] = []
            row.reserveCapacity(nf)
            for f in 0..<nf {
                if PQgetisnull(res, Int32(t), Int32(f)) != 0 { row.append(nil) }
                else { row.append(String(cString: PQgetvalue(res, Int32(t), Int32(f)))) }
            }
            rows.append(row)
        }
        return QueryResult(columns: columns, rows: rows)
    }

    /// The typed error for a failed result: the server's primary message and SQLSTATE.
    static func error(from res: OpaquePointer, command: String, connection: PGConnection) -> PGError {
        var message = String(cString: PQresultErrorMessage(res))
        if message.isEmpty { message = connection.lastError }
        let state = PQresultErrorField(res, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        if PQstatus(connection.conn) == CONNECTION_BAD {
            return .connectionLost(message)
        }
        return .commandFailed(command: commandName(command), sqlState: state, message: message)
    }

    /// The first words of a command, for messages (never the whole text: it may hold a label).
    static func commandName(_ command: String) -> String {
        let words = command.split(whereSeparator: { $0 == " " || $0 == "(" || $0 == "\n" }).prefix(2)
        let first = words.first.map(String.init) ?? command
        if first.uppercased() == "SHOW" || first.uppercased() == "SELECT", words.count > 1 {
            return first + " " + words[words.index(after: words.startIndex)]
        }
        return first
    }

    /// `IDENTIFY_SYSTEM` (replication sessions only).
    public func identifySystem() throws(PGError) -> SystemIdentification {
        let r = try query("IDENTIFY_SYSTEM")
        guard r.rows.count == 1,
              let sid = r.value(0, "systemid").flatMap({ UInt64($0) }),
              let tli = r.value(0, "timeline").flatMap({ UInt32($0) }),
              let pos = r.value(0, "xlogpos").flatMap({ LSN($0) }) else {
            throw .protocolViolation("IDENTIFY_SYSTEM answered \(r.columns) \(r.rows)")
        }
        return SystemIdentification(systemIdentifier: sid, timeline: tli, xlogPosition: pos,
                                    database: r.value(0, "dbname"))
    }

    /// `SHOW name`, the setting's text (works in replication sessions too).
    public func show(_ setting: String) throws(PGError) -> String {
        guard setting.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
            throw .unsupported("invalid setting name \(setting)")
        }
        let r = try query("SHOW " + setting)
        guard r.rows.count == 1, r.rows[0].count == 1, let v = r.rows[0][0] else {
            throw .protocolViolation("SHOW \(setting) answered \(r.rows)")
        }
        return v
    }

    /// The cluster's WAL segment size in bytes (`SHOW wal_segment_size`, e.g. `16MB`).
    public func walSegmentSize() throws(PGError) -> UInt64 {
        let text = try show("wal_segment_size")
        guard let bytes = Self.parseSize(text) else {
            throw .protocolViolation("wal_segment_size is \(text)")
        }
        return bytes
    }

    /// Parses a memory-unit setting as SHOW prints it (`16MB`, `1GB`, `8192kB`, `1048576`).
    public static func parseSize(_ text: String) -> UInt64? {
        let digits = text.prefix(while: { $0.isNumber })
        guard let n = UInt64(digits) else { return nil }
        switch text.dropFirst(digits.count).trimmingCharacters(in: " ") {
        case "", "B": return n
        case "kB": return n << 10
        case "MB": return n << 20
        case "GB": return n << 30
        case "TB": return n << 40
        default: return nil
        }
    }

    /// Quotes a string literal for a replication command or SQL (`'it''s'`).
    public static func literal(_ s: String) -> String {
        "'" + s.replacingAll("'", with: "''") + "'"
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}

extension String {
    func replacingAll(_ a: Character, with b: String) -> String {
        var out = ""
        out.reserveCapacity(count)
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}
