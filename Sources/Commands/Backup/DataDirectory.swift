import Foundation
import Storage
import WALFormat

/// What of a data directory a base backup copies: the same rules as PostgreSQL's own base backup
/// (src/backend/backup/basebackup.c, `sendDir`), so a file-level incremental holds exactly what
/// `BASE_BACKUP` would have sent.
public enum BackupExclusions {
    /// Directories kept (empty, for their permissions) whose contents are not copied: removed,
    /// recreated or zeroed at server start.
    public static let dirContents: Set<String> = [
        "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans",
    ]
    /// Files never copied, in any directory.
    public static let files: Set<String> = [
        "postgresql.auto.conf.tmp", "current_logfiles.tmp", "backup_label", "tablespace_map",
        "backup_manifest", "backup_manifest.tmp", "postmaster.pid", "postmaster.opts",
    ]
    /// Files whose name starts with one of these are never copied (the relation cache init file).
    public static let filePrefixes = ["pg_internal.init"]
    /// Temporary files and directories (`pgsql_tmp...`).
    public static let tempPrefix = "pgsql_tmp"

    /// True when the entry `name` in directory `relDir` (relative to the data directory or a
    /// tablespace's version directory: "" for the top) is left out entirely.
    public static func skips(name: String, relDir: String) -> Bool {
        if name.hasPrefix(tempPrefix) { return true }
        if files.contains(name) { return true }
        if filePrefixes.contains(where: { name.hasPrefix($0) }) { return true }
        return false
    }

    /// Files that end with a CRC-32C of their own contents (pg_control, pg_filenode.map, two-phase
    /// state files, the replication origin checkpoint): the CRC-32C of the whole file is then the
    /// same constant for every valid version of it (the CRC residue), so a manifest checksum cannot
    /// tell two versions apart. An incremental backup always stores them and `--delta` always
    /// rewrites them (they are small).
    public static func selfChecksummed(_ manifestPath: String) -> Bool {
        let name = manifestPath.split(separator: "/").last.map(String.init) ?? manifestPath
        return name == "pg_control" || name == "pg_filenode.map" || name == "replorigin_checkpoint" ||
            manifestPath.hasPrefix("pg_twophase/")
    }

    /// True for a temporary relation's file name (`t<backend>_<relfilenode>[_fork][.segment]`).
    public static func isTempRelation(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard u.count > 2, u[0] == UInt8(ascii: "t") else { return false }
        var i = 1
        let digits = { (c: UInt8) in c >= 0x30 && c <= 0x39 }
        let start = i
        while i < u.count && digits(u[i]) { i += 1 }
        guard i > start, i < u.count, u[i] == UInt8(ascii: "_") else { return false }
        i += 1
        let s2 = i
        while i < u.count && digits(u[i]) { i += 1 }
        return i > s2
    }

    /// The relfilenode part of a relation file name (`16384`, `16384_fsm`, `16384.1` -> `16384`),
    /// nil when `name` is not one.
    public static func relfilenode(_ name: String) -> (node: String, fork: String?)? {
        var base = Substring(name)
        if let dot = base.firstIndex(of: ".") {
            guard base[base.index(after: dot)...].allSatisfy(\.isNumber) else { return nil }
            base = base[..<dot]
        }
        var fork: String?
        if let us = base.firstIndex(of: "_") {
            fork = String(base[base.index(after: us)...])
            base = base[..<us]
        }
        guard !base.isEmpty, base.allSatisfy(\.isNumber) else { return nil }
        return (String(base), fork)
    }
}

/// One entry of a data directory walk, in the order a tar archive holds them (a directory before
/// its contents).
struct DataEntry {
    /// Path inside the archive (relative to the data directory, or to the tablespace location).
    var path: String
    /// The full path on disk.
    var fullPath: String
    var kind: TarEntry.Kind
    var mode: UInt32
    var size: Int64
    var mtime: Int64
    var linkTarget = ""
}

/// Walks a data directory (or a tablespace location) as PostgreSQL's base backup does.
enum DataDirectoryWalk {
    /// Entries of the data directory `root` (pg_control last, as PostgreSQL sends it; the
    /// tablespaces' `pg_tblspc/<oid>` links as symbolic links, not followed).
    static func dataDirectory(_ root: String) throws -> [DataEntry] {
        var out: [DataEntry] = []
        try walk(root: root, rel: "", out: &out, isTop: true, tablespaceVersionDir: nil)
        if let i = out.firstIndex(where: { $0.path == "global/pg_control" }) {
            out.append(out.remove(at: i))
        }
        return out
    }

    /// Entries of a tablespace location: only this server version's directory (`PG_16_...`).
    static func tablespace(_ location: String, versionDirectory: String) throws -> [DataEntry] {
        var out: [DataEntry] = []
        var st = stat()
        let full = location + "/" + versionDirectory
        guard lstat(full, &st) == 0 else {
            if errno == ENOENT { return [] }
            throw WalctlError.file(operation: "stat", path: full, errno: errno)
        }
        out.append(DataEntry(path: versionDirectory, fullPath: full, kind: .directory, mode: UInt32(st.st_mode) & 0o7777,
                             size: 0, mtime: Int64(st.st_mtim.tv_sec)))
        try walk(root: location, rel: versionDirectory, out: &out, isTop: false, tablespaceVersionDir: versionDirectory)
        return out
    }

    private static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else {
            if errno == ENOENT { return [] }  // dropped while the backup runs: WAL replay recreates nothing of it
            throw WalctlError.file(operation: "open directory", path: dir, errno: errno)
        }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    private static func walk(root: String, rel: String, out: inout [DataEntry], isTop: Bool, tablespaceVersionDir: String?) throws {
        let dir = rel.isEmpty ? root : root + "/" + rel
        let names = try list(dir)
        // Unlogged relations: only their init fork is copied (basebackup.c, ResetUnloggedRelations).
        // A database directory is base/<oid> or <version dir>/<oid> in a tablespace.
        let parts = rel.split(separator: "/")
        let isDbDir = (parts.count == 2 && parts[0] == "base") ||
            (tablespaceVersionDir != nil && parts.count == 2 && String(parts[0]) == tablespaceVersionDir)
        var unlogged = Set<String>()
        if isDbDir {
            for n in names { if let r = BackupExclusions.relfilenode(n), r.fork == "init" { unlogged.insert(r.node) } }
        }
        for name in names {
            let relPath = rel.isEmpty ? name : rel + "/" + name
            let full = dir + "/" + name
            if BackupExclusions.skips(name: name, relDir: rel) { continue }
            if isDbDir {
                if BackupExclusions.isTempRelation(name) { continue }
                if let r = BackupExclusions.relfilenode(name), unlogged.contains(r.node), r.fork != "init" { continue }
            }
            var st = stat()
            guard lstat(full, &st) == 0 else {
                if errno == ENOENT { continue }  // removed while walking: as PostgreSQL, skip it
                throw WalctlError.file(operation: "stat", path: full, errno: errno)
            }
            let mode = UInt32(st.st_mode) & 0o7777
            let mtime = Int64(st.st_mtim.tv_sec)
            switch st.st_mode & S_IFMT {
            case S_IFLNK:
                // Only pg_tblspc/<oid> links are backed up (as links); anything else is followed by
                // PostgreSQL only for pg_wal, which is skipped here anyway.
                if rel == "pg_tblspc" && tablespaceVersionDir == nil {
                    var buf = [CChar](repeating: 0, count: 4096)
                    let n = readlink(full, &buf, buf.count - 1)
                    guard n >= 0 else { throw WalctlError.file(operation: "readlink", path: full, errno: errno) }
                    let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    out.append(DataEntry(path: relPath, fullPath: full, kind: .symlink, mode: 0o777, size: 0, mtime: mtime, linkTarget: target))
                } else if isTop && name == "pg_wal" {
                    out.append(DataEntry(path: relPath, fullPath: full, kind: .directory, mode: 0o700, size: 0, mtime: mtime))
                    out.append(DataEntry(path: relPath + "/archive_status", fullPath: full + "/archive_status", kind: .directory, mode: 0o700, size: 0, mtime: mtime))
                }
            case S_IFDIR:
                out.append(DataEntry(path: relPath, fullPath: full, kind: .directory, mode: mode, size: 0, mtime: mtime))
                if isTop && name == "pg_wal" {
                    // WAL comes from the archive: pg_wal is copied empty, with archive_status
                    // (and summaries, PostgreSQL 17+) as PostgreSQL does.
                    for sub in ["archive_status", "summaries"] {
                        var s2 = stat()
                        if lstat(full + "/" + sub, &s2) == 0 && (s2.st_mode & S_IFMT) == S_IFDIR {
                            out.append(DataEntry(path: relPath + "/" + sub, fullPath: full + "/" + sub, kind: .directory,
                                                 mode: UInt32(s2.st_mode) & 0o7777, size: 0, mtime: Int64(s2.st_mtim.tv_sec)))
                        }
                    }
                    continue
                }
                if isTop && BackupExclusions.dirContents.contains(name) { continue }
                try walk(root: root, rel: relPath, out: &out, isTop: false, tablespaceVersionDir: tablespaceVersionDir)
            case S_IFREG:
                out.append(DataEntry(path: relPath, fullPath: full, kind: .file, mode: mode, size: Int64(st.st_size), mtime: mtime))
            default:
                continue  // sockets, FIFOs: PostgreSQL warns and skips them
            }
        }
    }
}

/// Writes a `backup_manifest` in PostgreSQL's format (version 1), so `pg_verifybackup` and walctl's
/// restore check a file-level incremental exactly as a server-made one.
public enum ManifestWriter {
    public struct Entry: Sendable, Equatable {
        public var path: String
        public var size: Int64
        public var lastModified: String
        /// CRC-32C as the manifest prints it (`ServerManifest.crc32cHex`).
        public var checksum: String
        public init(path: String, size: Int64, lastModified: String, checksum: String) {
            self.path = path; self.size = size; self.lastModified = lastModified; self.checksum = checksum
        }
    }

    /// The manifest's text: files in the given order, one WAL range, and the SHA-256
    /// `Manifest-Checksum` of everything before its line.
    public static func render(files: [Entry], timeline: TimeLineID, start: LSN, end: LSN) -> [UInt8] {
        var text = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n"
        for (i, f) in files.enumerated() {
            text += "{ \"Path\": \"\(escape(f.path))\", \"Size\": \(f.size), \"Last-Modified\": \"\(f.lastModified)\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"\(f.checksum)\" }"
            text += i == files.count - 1 ? "\n" : ",\n"
        }
        text += "],\n\"WAL-Ranges\": [\n{ \"Timeline\": \(timeline), \"Start-LSN\": \"\(start)\", \"End-LSN\": \"\(end)\" }\n],\n"
        let sum = Digest.sha256Hex(text)
        text += "\"Manifest-Checksum\": \"\(sum)\"}\n"
        return Array(text.utf8)
    }

    /// `Last-Modified` text for a Unix time: `2026-11-30 10:15:00 GMT`.
    public static func lastModified(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func p(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(p(tm.tm_year + 1900, 4))-\(p(tm.tm_mon + 1, 2))-\(p(tm.tm_mday, 2)) \(p(tm.tm_hour, 2)):\(p(tm.tm_min, 2)):\(p(tm.tm_sec, 2)) GMT"
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// The first 8 bytes of `global/pg_control` (the system identifier, little-endian), nil when the
/// file does not exist or is shorter.
func systemIdentifierBytes(_ path: String) throws -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw WalctlError.file(operation: "open", path: path, errno: errno)
    }
    defer { close(fd) }
    var b = [UInt8](repeating: 0, count: 8)
    let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 8, 0) }
    if n < 0 { throw WalctlError.file(operation: "read", path: path, errno: errno) }
    return n == 8 ? b : nil
}
