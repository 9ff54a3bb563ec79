import Catalog
import Codec
import Foundation
import LocalFS
import Storage
import WALFormat

/// Settings of one `walctl restore-backup`.
public struct RestoreOptions: Sendable {
    /// Where to put each tablespace, by its location on the backed-up server; unlisted tablespaces go
    /// back to their original location (which must then be empty or absent).
    public var tablespaceMapping: [String: String] = [:]
    /// Owner of everything restored when walctl runs as root; nil takes the owner of the target
    /// directory (or of its parent when it does not exist yet). Ignored for other users.
    public var owner: (uid: uid_t, gid: gid_t)?
    /// Skip the manifest checks (sizes and checksums). Only for damaged manifests: restore verifies by default.
    public var skipVerification = false
    public init() {}
}

/// What a restore did.
public struct RestoreReport: Sendable, Equatable {
    public var label: String
    public var files: Int
    /// Uncompressed bytes written.
    public var bytes: Int64
    /// Bytes read from the repository.
    public var storedBytes: Int64
    /// Files whose size and checksum were checked against the manifest.
    public var verifiedFiles: Int
    public var seconds: Double
}

/// Restores base backup `label` from `repository` into the data directory `pgdata`.
///
/// Each archive streams from the repository through decompression into a tar reader that writes the
/// files directly: nothing is staged on disk, memory stays bounded. Every file is checked against the
/// server's `backup_manifest` (size, and CRC-32C when the manifest uses it) as it is written, the stored
/// objects against the CRC-32C recorded at backup time, and the manifest is written into `pgdata` so
/// `pg_verifybackup` can check the result again. The data directory gets mode 0700 (0750 when the
/// cluster had group access), every file its mode from the archive; everything is fsynced (`syncfs`)
/// before returning.
///
/// The restored directory holds no WAL: recovery fetches it with `restore_command`.
///
/// - Parameter force: restore into a non-empty directory (and non-empty tablespace locations) after
///   deleting everything in them. Never when a PostgreSQL server is running there.
/// - Throws: `WalctlError` — `.refused` (no such backup, non-empty target, running server, unsafe
///   archive member), `.checksumMismatch`, `.codec`, `.store`, `.file`.
@discardableResult
public func restoreBackup(label: String, repository: Repository, pgdata: String, force: Bool = false,
                          options: RestoreOptions = RestoreOptions(), log: @escaping (String) -> Void = { _ in },
                          progress: ProgressOutput = .off) throws -> RestoreReport {
    let began = Date()
    let (_, contents) = try BackupMetadata.read(label: label, repository: repository)
    let prefix = BackupMetadata.prefix(label: label)
    var target = pgdata
    while target.count > 1 && target.hasSuffix("/") { target.removeLast() }

    // Manifest first: it is needed while files are written.
    var manifestBytes: [UInt8]?
    var manifest: ServerManifest?
    if let m = contents.manifestObject {
        guard let bytes = try storeCall({ try repository.store.get(key: prefix + m) }) else {
            throw WalctlError.refused("backup \(label) is damaged: its manifest object \(prefix + m) is missing")
        }
        manifestBytes = bytes
        if !options.skipVerification { manifest = try ServerManifest(json: bytes) }
    }

    let owner = try restoreOwner(options: options, target: target)
    try prepareDirectory(target, force: force, what: "target data directory", owner: owner)

    var files = 0, verified = 0
    var bytes: Int64 = 0, storedBytes: Int64 = 0
    var seen = Set<String>()
    var groupAccess = false
    // Tablespaces first, so the links base.tar creates point at directories that exist.
    let ordered = contents.archives.filter { $0.tablespaceOID != nil } + contents.archives.filter { $0.tablespaceOID == nil }
    var tablespaceTargets: [String: String] = [:]
    // Progress: stored bytes read, of the archives' stored sizes (known exactly from backup.json).
    let shown = progress.start("restore \(label)", unit: .bytes, total: contents.archives.reduce(0) { $0 + $1.storedSize })
    defer { shown.finish() }
    for a in ordered {
        guard let codec = CodecKind(rawValue: a.codec) else {
            throw WalctlError.refused("backup \(label): archive \(a.object) uses unknown codec \(a.codec)")
        }
        let root: String
        let manifestPrefix: String
        if let oid = a.tablespaceOID {
            guard let loc = a.tablespaceLocation else {
                throw WalctlError.refused("backup \(label): tablespace \(oid) has no recorded location")
            }
            root = options.tablespaceMapping[loc] ?? loc
            guard root.hasPrefix("/") else { throw WalctlError.refused("tablespace \(oid) would be restored to relative path \(root): map it to an absolute path") }
            tablespaceTargets[loc] = root
            manifestPrefix = "pg_tblspc/\(oid)/"
            try prepareDirectory(root, force: force, what: "tablespace \(oid) location", owner: owner)
            log("restore \(label): tablespace \(oid) (\(loc)) into \(root)")
        } else {
            root = target
            manifestPrefix = ""
        }
        let writer = RestoreWriter(root: root, manifestPrefix: manifestPrefix, manifest: manifest, owner: owner,
                                   tablespaceTargets: tablespaceTargets, isBase: a.tablespaceOID == nil)
        let tar = TarReader(visitor: writer)
        let decompressor = try codecCall(a.object) { () throws(CodecError) in try codec.makeDecompressor() }
        var crc = CRC32C()
        var n: Int64 = 0
        do {
            try repository.store.read(key: prefix + a.object) { chunk in
                crc.update(chunk)
                n += Int64(chunk.count)
                shown.add(Int64(chunk.count))
                try decompressor.update(chunk) { try tar.feed($0) }
            }
            try decompressor.finish { try tar.feed($0) }
            try tar.finish()
        } catch let e as CodecError {
            throw WalctlError.codec(name: prefix + a.object, e)
        } catch let e as StoreError {
            throw WalctlError.store(e)
        } catch let e as TarError {
            throw WalctlError.refused("backup \(label): \(a.object): \(e)")
        }
        writer.close()
        let storedCRC = ArchivedFileMeta.hex(crc.value)
        guard n == a.storedSize, storedCRC == a.storedCRC32C else {
            throw WalctlError.checksumMismatch(name: prefix + a.object, expected: a.storedCRC32C, actual: storedCRC,
                                               size: n, expectedSize: a.storedSize)
        }
        files += writer.files; verified += writer.verified; bytes += writer.bytes; storedBytes += n
        seen.formUnion(writer.seen)
        groupAccess = groupAccess || writer.groupAccess
    }

    shown.finish()
    if let manifest {
        let missing = manifest.files.keys.filter { !seen.contains($0) }.sorted()
        guard missing.isEmpty else {
            throw WalctlError.refused("backup \(label) is incomplete: \(missing.count) file(s) in its manifest are not in its archives, first \(missing[0])")
        }
    }
    if let mb = manifestBytes {
        try writeFile(target + "/backup_manifest", mb, mode: 0o600, owner: owner)
    }
    // Mode of the data directory: PostgreSQL refuses anything but 0700 or 0750.
    if chmod(target, groupAccess ? 0o750 : 0o700) != 0 { throw WalctlError.file(operation: "chmod", path: target, errno: errno) }
    try syncTree(target)
    for t in tablespaceTargets.values { try syncTree(t) }

    let report = RestoreReport(label: label, files: files, bytes: bytes, storedBytes: storedBytes, verifiedFiles: verified,
                               seconds: Date().timeIntervalSince(began))
    // No line here: the caller prints the result once (restore-backup printed it twice).
    return report
}

private func storeCall<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as StoreError { throw WalctlError.store(e) }
}

private func codecCall<T>(_ name: String, _ body: () throws(CodecError) -> T) throws -> T {
    do { return try body() } catch { throw WalctlError.codec(name: name, error) }
}

/// Who will own the restored files: only relevant when running as root.
private func restoreOwner(options: RestoreOptions, target: String) throws -> (uid: uid_t, gid: gid_t)? {
    guard geteuid() == 0 else { return nil }
    if let o = options.owner { return o }
    var st = stat()
    if stat(target, &st) == 0 || stat((target as NSString).deletingLastPathComponent, &st) == 0 {
        return (st.st_uid, st.st_gid)
    }
    return nil
}

/// Makes `dir` an empty directory: creates it (mode 0700), or checks it is empty, or with `force`
/// empties it (refusing when a live postmaster.pid is there).
private func prepareDirectory(_ dir: String, force: Bool, what: String, owner: (uid: uid_t, gid: gid_t)?) throws {
    var st = stat()
    if stat(dir, &st) != 0 {
        guard errno == ENOENT else { throw WalctlError.file(operation: "stat", path: dir, errno: errno) }
        do { try LocalFS.makePrivateDirectory(dir, what: what) } catch { throw WalctlError(error) }
        if let o = owner { _ = chown(dir, o.uid, o.gid) }
        return
    }
    guard (st.st_mode & S_IFMT) == S_IFDIR else { throw WalctlError.refused("\(what) \(dir) exists and is not a directory") }
    let entries: [String]
    do { entries = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
        throw WalctlError.file(operation: "list", path: dir, errno: EACCES)
    }
    if entries.isEmpty { return }
    guard force else {
        throw WalctlError.refused("\(what) \(dir) is not empty: restore into an empty directory, or pass --force to delete its contents first")
    }
    if let pidText = try? String(contentsOfFile: dir + "/postmaster.pid", encoding: .utf8),
       let pid = Int32(pidText.split(separator: "\n").first ?? ""), pid > 0, kill(pid, 0) == 0 || errno == EPERM {
        throw WalctlError.refused("\(what) \(dir) belongs to a running PostgreSQL server (pid \(pid)): stop it first")
    }
    for e in entries {
        do { try FileManager.default.removeItem(atPath: dir + "/" + e) } catch {
            throw WalctlError.file(operation: "remove", path: dir + "/" + e, errno: EACCES)
        }
    }
}

/// A whole file of the restore (LocalFS's atomic write), synced with the tree at the end (`syncTree`).
private func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t, owner: (uid: uid_t, gid: gid_t)?) throws {
    do { try LocalFS.writeFile(path, bytes, mode: mode, durability: .none, owner: owner) } catch { throw WalctlError(error) }
}

/// Flushes the filesystem holding `dir` (`syncfs`), then the directory itself (LocalFS).
private func syncTree(_ dir: String) throws {
    do { try LocalFS.syncFilesystem(of: dir) } catch { throw WalctlError(error) }
}

/// Writes the members of one tar archive under `root`, checking each file against the manifest.
final class RestoreWriter: TarVisitor {
    let root: String
    let manifestPrefix: String
    let manifest: ServerManifest?
    let owner: (uid: uid_t, gid: gid_t)?
    let tablespaceTargets: [String: String]
    let isBase: Bool
    private var fd: Int32 = -1
    private var path = ""
    private var crc = CRC32C()
    private var written: Int64 = 0
    private var createdDirs = Set<String>()
    /// Symbolic links this restore made (tablespaces): nothing is ever written through one.
    private var links = Set<String>()
    private(set) var files = 0
    private(set) var verified = 0
    private(set) var bytes: Int64 = 0
    private(set) var seen = Set<String>()
    private(set) var groupAccess = false

    init(root: String, manifestPrefix: String, manifest: ServerManifest?, owner: (uid: uid_t, gid: gid_t)?,
         tablespaceTargets: [String: String], isBase: Bool) {
        self.root = root; self.manifestPrefix = manifestPrefix; self.manifest = manifest; self.owner = owner
        self.tablespaceTargets = tablespaceTargets; self.isBase = isBase
    }

    /// Refuses absolute paths, `..`, and empty components: nothing may land outside `root`.
    private func safe(_ p: String) throws -> String {
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        guard !p.isEmpty, !p.hasPrefix("/"), !parts.contains(where: { $0 == ".." || $0.isEmpty }) else {
            throw WalctlError.refused("unsafe path \"\(p)\" in backup archive: refusing to restore it")
        }
        return root + "/" + p
    }

    private func ensureParent(of full: String) throws {
        let parent = (full as NSString).deletingLastPathComponent
        if parent == root || createdDirs.contains(parent) { return }
        var st = stat()
        if stat(parent, &st) == 0 { createdDirs.insert(parent); return }
        try ensureParent(of: parent)
        if mkdir(parent, 0o700) != 0 && errno != EEXIST { throw WalctlError.file(operation: "mkdir", path: parent, errno: errno) }
        if let o = owner { _ = chown(parent, o.uid, o.gid) }
        createdDirs.insert(parent)
    }

    func begin(_ e: TarEntry) throws {
        let full = try safe(e.path)
        if !links.isEmpty, links.contains(where: { full == $0 || full.hasPrefix($0 + "/") }) {
            throw WalctlError.refused("backup archive member \(e.path) lies under the symbolic link it made before: refusing to write through it")
        }
        try ensureParent(of: full)
        switch e.kind {
        case .directory:
            if mkdir(full, mode_t(e.mode & 0o777)) != 0 {
                guard errno == EEXIST else { throw WalctlError.file(operation: "mkdir", path: full, errno: errno) }
                _ = chmod(full, mode_t(e.mode & 0o777))
            }
            if let o = owner { _ = chown(full, o.uid, o.gid) }
            createdDirs.insert(full)
            if isBase && e.path == "global" && e.mode & 0o070 != 0 { groupAccess = true }
        case .symlink:
            // PostgreSQL links only tablespaces (pg_tblspc/<oid>) in its archives.
            guard isBase, e.path.hasPrefix("pg_tblspc/"), !e.path.dropFirst(10).contains("/") else {
                throw WalctlError.refused("unexpected symbolic link \(e.path) -> \(e.linkTarget) in backup archive")
            }
            let dest = tablespaceTargets[e.linkTarget] ?? e.linkTarget
            if symlink(dest, full) != 0 { throw WalctlError.file(operation: "symlink", path: full, errno: errno) }
            links.insert(full)
            if let o = owner { _ = lchown(full, o.uid, o.gid) }
        case .file:
            do { fd = try LocalFS.createExclusive(full, mode: mode_t(e.mode & 0o777)) } catch { throw WalctlError(error) }
            if let o = owner { _ = fchown(fd, o.uid, o.gid) }
            path = full
            crc = CRC32C()
            written = 0
        case .hardlink, .other:
            throw WalctlError.refused("unsupported member \(e.path) (type \(e.kind)) in backup archive")
        }
    }

    func data(_ b: UnsafeRawBufferPointer) throws {
        crc.update(b)
        written += Int64(b.count)
        do { try LocalFS.writeAll(fd, b, path: path) } catch { throw WalctlError(error) }
    }

    func end(_ e: TarEntry) throws {
        guard e.kind == .file else { return }
        close()
        files += 1
        bytes += written
        let key = manifestPrefix + e.path
        guard let manifest else { return }
        guard let m = manifest.files[key] else {
            // The server adds backup_label and tablespace_map to the manifest; nothing else should be extra.
            throw WalctlError.refused("\(key) is in the backup archive but not in its manifest")
        }
        seen.insert(key)
        guard m.size == written else {
            throw WalctlError.checksumMismatch(name: key, expected: m.checksum ?? "-", actual: "-", size: written, expectedSize: m.size)
        }
        if m.algorithm == "CRC32C", let expected = m.checksum {
            let actual = ServerManifest.crc32cHex(crc.value)
            guard actual == expected else {
                throw WalctlError.checksumMismatch(name: key, expected: expected, actual: actual, size: written, expectedSize: m.size)
            }
        }
        verified += 1
    }

    func close() { if fd >= 0 { Foundation.close(fd); fd = -1 } }
    deinit { close() }
}
