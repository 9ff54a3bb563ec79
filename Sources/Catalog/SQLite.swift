import CSQLite
import Foundation

/// SQLite's `SQLITE_TRANSIENT`: the macro does not import into Swift.
let sqliteTransient = unsafeBitCast(Int(-1), to: sqlite3_destructor_type.self)

/// One SQLite connection with a cache of prepared statements. Not thread-safe: one per thread.
final class SQLiteConnection {
    let db: OpaquePointer
    let path: String
    private var cache: [String: Statement] = [:]

    init(path: String, readOnly: Bool) throws(CatalogError) {
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) |
            SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw .cannotOpen(path: path, message: message)
        }
        db = handle
        self.path = path
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        for s in cache.values { sqlite3_finalize(s.stmt) }
        cache.removeAll()
        sqlite3_close_v2(db)
    }

    func error(_ rc: Int32, _ context: String) -> CatalogError {
        let primary = rc & 0xFF
        let msg = String(cString: sqlite3_errmsg(db))
        if primary == SQLITE_BUSY || primary == SQLITE_LOCKED { return .busy(path: path, message: "\(context): \(msg)") }
        if primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB { return .corrupt(path: path, message: "\(context): \(msg)") }
        if primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN || primary == SQLITE_PERM {
            return .cannotOpen(path: path, message: "\(context): \(msg)")
        }
        return .sqlite(path: path, code: rc, message: "\(context): \(msg)")
    }

    /// Runs one or more statements without results.
    func exec(_ sql: String) throws(CatalogError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            sqlite3_free(err)
            throw error(rc, String(sql.prefix(60)))
        }
    }

    /// A cached prepared statement, reset and with its bindings cleared.
    func prepare(_ sql: String) throws(CatalogError) -> Statement {
        if let s = cache[sql] {
            sqlite3_reset(s.stmt)
            sqlite3_clear_bindings(s.stmt)
            return s
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, "prepare \(sql.prefix(60))") }
        let s = Statement(stmt: stmt, connection: self)
        cache[sql] = s
        return s
    }

    /// One integer from a one-row query (nil when there is no row or the value is NULL).
    func scalar(_ sql: String, _ binds: [SQLValue] = []) throws(CatalogError) -> Int64? {
        let s = try prepare(sql)
        try s.bind(binds)
        defer { s.reset() }
        guard try s.step() else { return nil }
        return s.int64OrNil(0)
    }

    var changes: Int { Int(sqlite3_changes(db)) }
}

/// A value to bind.
enum SQLValue {
    case int(Int64)
    case text(String)
    case null

    static func opt(_ v: Int64?) -> SQLValue { v.map { .int($0) } ?? .null }
}

/// A prepared statement owned by a connection's cache.
final class Statement {
    let stmt: OpaquePointer
    unowned let connection: SQLiteConnection
    init(stmt: OpaquePointer, connection: SQLiteConnection) { self.stmt = stmt; self.connection = connection }

    func bind(_ values: [SQLValue]) throws(CatalogError) {
        for (i, v) in values.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch v {
            case .int(let x): rc = sqlite3_bind_int64(stmt, idx, x)
            case .text(let t): rc = sqlite3_bind_text(stmt, idx, t, -1, sqliteTransient)
            case .null: rc = sqlite3_bind_null(stmt, idx)
            }
            if rc != SQLITE_OK { throw connection.error(rc, "bind") }
        }
    }

    /// Advances; true when a row is available.
    func step() throws(CatalogError) -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let e = connection.error(rc, String(String(cString: sqlite3_sql(stmt)).prefix(60)))
        sqlite3_reset(stmt)
        throw e
    }

    /// Binds, runs to completion, resets.
    func run(_ values: [SQLValue]) throws(CatalogError) {
        try bind(values)
        defer { reset() }
        while try step() {}
    }

    func reset() { sqlite3_reset(stmt) }

    func int64(_ col: Int32) -> Int64 { sqlite3_column_int64(stmt, col) }
    func int64OrNil(_ col: Int32) -> Int64? {
        sqlite3_column_type(stmt, col) == SQLITE_NULL ? nil : sqlite3_column_int64(stmt, col)
    }
    func text(_ col: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, col) else { return "" }
        return String(cString: p)
    }
    func textOrNil(_ col: Int32) -> String? {
        sqlite3_column_type(stmt, col) == SQLITE_NULL ? nil : text(col)
    }
}
