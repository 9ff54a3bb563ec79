import Catalog
import Codec
import Foundation
import Logging
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
    /// Restore into an existing data directory of the same cluster, rewriting only what differs
    /// (`restore-backup --delta`, `recover --delta`; docs/backup.md).
    public var delta = false
    /// Archives restored at once (threads); 0: one per core. A PostgreSQL 17+ native chain is
    /// always restored one archive at a time (docs/backup.md).
    public var parallel = 0
    public init() {}

    /// `--tablespace-mapping OLDDIR=NEWDIR` (repeatable, pg_basebackup's spelling): the tablespace
    /// the backed-up server had at OLDDIR is restored into NEWDIR. Both absolute, trailing slashes
    /// dropped, OLDDIR at most once.
    public static func tablespaceMapping(_ entries: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        for e in entries {
            guard let eq = e.firstIndex(of: "=") else {
                throw WalctlError.usage("--tablespace-mapping \(e): expected OLDDIR=NEWDIR")
            }
            func clean(_ p: Substring) -> String {
                var s = String(p)
                while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
                return s
            }
            let old = clean(e[..<eq]), new = clean(e[e.index(after: eq)...])
            guard old.hasPrefix("/"), new.hasPrefix("/") else {
                throw WalctlError.usage("--tablespace-mapping \(e): both directories must be absolute paths")
            }
            guard out[old] == nil else { throw WalctlError.usage("--tablespace-mapping: \(old) is mapped twice") }
            out[old] = new
        }
        return out
    }
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
    /// The backups read, the full backup first (one label for a full backup).
    public var chain: [String] = []
    /// `--delta`: files already right in the target (kept), and files removed from it.
    public var keptFiles = 0
    public var removedFiles = 0
    /// `--delta`: of the files that differed and were rewritten in place, the bytes already right
    /// (not written) and the bytes written.
    public var unchangedBytes: Int64 = 0
    public var rewrittenBytes: Int64 = 0
}

/// One backup of a restore's chain, read before anything is written.
struct ChainMember {
    var record: BackupRecord
    var contents: BackupContents
    var manifestBytes: [UInt8]?
    var prefix: String { BackupMetadata.prefix(label: record.label) }
}

/// Reads every member of `label`'s chain (its full backup first): each `backup.json`, each
/// manifest. Throws `chain-damaged` naming the member that is missing or unreadable.
func loadChain(label: String, repository: Repository) throws -> [ChainMember] {
    var members: [ChainMember] = []
    var next: String? = label
    var seen = Set<String>()
    while let l = next {
        guard seen.insert(l).inserted else { throw WalctlError.chainDamaged("the chain of backup \(label) loops at \(l): its backup.json files are damaged") }
        let record: BackupRecord, contents: BackupContents
        do {
            (record, contents) = try BackupMetadata.read(label: l, repository: repository)
        } catch let e as WalctlError where l != label {
            throw WalctlError.chainDamaged("backup \(label) needs \(l) (its chain: \(([l] + members.map(\.record.label)).reversed().joined(separator: " -> "))), which is missing or unreadable: \(e); nothing was written")
        }
        guard record.status == .complete else {
            throw WalctlError.chainDamaged("backup \(label) needs \(l), whose status is \(record.status.rawValue); nothing was written")
        }
        var manifest: [UInt8]?
        if let m = contents.manifestObject {
            guard let bytes = try storeCall({ try repository.store.get(key: BackupMetadata.prefix(label: l) + m) }) else {
                throw WalctlError.chainDamaged("backup \(l)\(l == label ? "" : " (of \(label)'s chain)") is damaged: its manifest object \(BackupMetadata.prefix(label: l) + m) is missing; nothing was written")
            }
            manifest = bytes
        }
        members.append(ChainMember(record: record, contents: contents, manifestBytes: manifest))
        next = record.type == .incremental ? record.parent : nil
        if record.type == .incremental && record.parent == nil {
            throw WalctlError.chainDamaged("backup \(l) is incremental but names no parent; nothing was written")
        }
    }
    return members.reversed()
}

/// Proves every object of every member is there before anything is written: present (one listing
/// per member), of its stored size (unencrypted repositories: an encrypted object is larger than
/// what was stored), of the ETag it had when stored (S3: the listing's against the backup's record;
/// an object rewritten at the same size has a new one), and on a file repository of its stored
/// CRC-32C (read through). Throws `chain-damaged` naming the member and the object.
func verifyChain(_ chain: [ChainMember], repository: Repository, checksums: Bool) throws {
    let sizes = !(repository.store is EncryptedStore)
    for m in chain {
        let listed = try storeCall { try repository.store.list(prefix: m.prefix) }
        var byKey: [String: ObjectInfo] = [:]
        for o in listed { byKey[o.key] = o }
        for a in m.contents.archives {
            let key = m.prefix + a.object
            guard let info = byKey[key] else {
                throw WalctlError.chainDamaged("backup \(m.record.label) is damaged: its archive \(key) is missing; nothing was written")
            }
            if sizes && info.size != a.storedSize {
                throw WalctlError.chainDamaged("backup \(m.record.label) is damaged: \(key) holds \(info.size) bytes, \(a.storedSize) were stored; nothing was written")
            }
            if let stored = a.storedETag, let now = info.etag, stored != now {
                throw WalctlError.chainDamaged("backup \(m.record.label) is damaged: \(key) was rewritten after the backup (ETag \(now), \(stored) when stored); nothing was written")
            }
            if checksums {
                var crc = CRC32C()
                var n: Int64 = 0
                do {
                    try repository.store.read(key: key) { chunk in crc.update(chunk); n += Int64(chunk.count) }
                } catch {
                    throw WalctlError.chainDamaged("backup \(m.record.label) is damaged: \(key) cannot be read (\(error)); nothing was written")
                }
                let hex = ArchivedFileMeta.hex(crc.value)
                guard n == a.storedSize, hex == a.storedCRC32C else {
                    throw WalctlError.chainDamaged("backup \(m.record.label) is damaged: \(key) has CRC-32C \(hex) over \(n) bytes, \(a.storedCRC32C) over \(a.storedSize) were stored; nothing was written")
                }
            }
        }
    }
}

/// The member that stores each file of the final manifest (its label), nil for a full backup
/// (everything comes from it).
func fileSources(_ chain: [ChainMember]) -> [String: String]? {
    guard let last = chain.last, chain.count > 1 else { return nil }
    return last.contents.references ?? [:]
}

/// Restores base backup `label` from `repository` into the data directory `pgdata`; for an
/// incremental backup, its whole chain in one pass over each member (docs/backup.md).
///
/// Before anything is written, every member's `backup.json` and manifest are read and every object
/// of the chain is proven present (and of its stored size; on a file repository of its stored
/// CRC-32C): a damaged chain is refused (`chain-damaged`) with the target untouched. Then each
/// archive streams from the repository through decompression into a tar reader that writes the
/// files directly: nothing is staged on disk, memory stays bounded. The newest member is read first
/// (its directories, links and the files it stores), then each older member only for the files it
/// stores that are in the final manifest (an archive with none is not downloaded). Every file is
/// checked against the final `backup_manifest` (size, and CRC-32C) as it is written, the stored
/// objects against the CRC-32C recorded at backup time, and the manifest is written into `pgdata` so
/// `pg_verifybackup` can check the result again. The data directory gets mode 0700 (0750 when the
/// cluster had group access), every file its mode from the archive; everything is fsynced (`syncfs`)
/// before returning.
///
/// With `options.delta`, `pgdata` is an existing data directory of the same cluster (its
/// `global/pg_control` names the backup's system, no server running): files whose size and CRC-32C
/// already match the manifest are kept, the others rewritten, files not in the manifest removed
/// (pg_wal emptied, as every restore leaves it).
///
/// The restored directory holds no WAL: recovery fetches it with `restore_command`.
///
/// - Parameter force: restore into a non-empty directory (and non-empty tablespace locations) after
///   deleting everything in them. Never when a PostgreSQL server is running there.
/// - Throws: `WalctlError` — `.refused` (no such backup, non-empty target, running server, unsafe
///   archive member), `.chainDamaged`, `.checksumMismatch`, `.codec`, `.store`, `.file`.
@discardableResult
public func restoreBackup(label: String, repository: Repository, pgdata: String, force: Bool = false,
                          options: RestoreOptions = RestoreOptions(), logger: Logger = WalctlLog.silent,
                          progress: ProgressOutput = .off) throws -> RestoreReport {
    let began = Date()
    try BackupMetadata.validateLabel(label)
    guard try repository.store.head(key: BackupMetadata.key(label: label)) != nil else {
        throw WalctlError.refused("no backup \(label) in \(repository.url) (see `walctl backup list`)")
    }
    let chain = try loadChain(label: label, repository: repository)
    guard let final = chain.last else { throw WalctlError.refused("no backup \(label)") }
    // PostgreSQL 17+ native incrementals: INCREMENTAL.<file> members combined in the same pass
    // (NativeRestore.swift); what each member gives is planned from the manifests first.
    let native = chain.count > 1 && chain.contains(where: { $0.contents.incrementalMethod == "native" })
        ? try NativeRestorePlan(chain: chain) : nil
    let combine = NativeCombine()
    var target = pgdata
    while target.count > 1 && target.hasSuffix("/") { target.removeLast() }
    let isFileRepository = repository.url.hasPrefix("file://") || repository.url.hasPrefix("/")
    if chain.count > 1 || options.delta {
        // A --delta changes a directory that already holds a cluster: on a file repository every
        // object's CRC-32C is read through first, a single full backup's too.
        try verifyChain(chain, repository: repository, checksums: isFileRepository && (chain.count > 1 || options.delta))
    }

    let manifestBytes = final.manifestBytes
    var parsedManifest: ServerManifest?
    if let mb = manifestBytes, !options.skipVerification || chain.count > 1 || options.delta { parsedManifest = try ServerManifest(json: mb) }
    let manifest = parsedManifest
    if (chain.count > 1 || options.delta) && manifest == nil {
        throw WalctlError.refused("backup \(label) has no backup_manifest: it cannot be restored as a chain or with --delta")
    }
    let sources = fileSources(chain)
    func source(_ path: String) -> String { sources?[path] ?? final.record.label }

    // What each member gives, and the bytes to download. `already`: files the target has right (--delta).
    func needed(_ m: ChainMember, _ a: BackupArchive, already: Set<String> = []) -> Bool {
        if m.record.label == final.record.label { return true }
        if let native { return native.needed(member: m.record.label, tablespaceOID: a.tablespaceOID) }
        guard let manifest else { return false }
        let tsPrefix = a.tablespaceOID.map { "pg_tblspc/\($0)/" }
        return manifest.files.keys.contains { p in
            source(p) == m.record.label && (tsPrefix.map { p.hasPrefix($0) } ?? !p.hasPrefix("pg_tblspc/")) && !already.contains(p)
        }
    }
    var work: [(member: ChainMember, archive: BackupArchive)] = []
    // The newest member first (its directories and links), tablespaces before the base archive so
    // the links base.tar creates point at directories that exist; then the older members.
    for m in chain.reversed() {
        for a in m.contents.archives.filter({ $0.tablespaceOID != nil }) + m.contents.archives.filter({ $0.tablespaceOID == nil })
        where needed(m, a) { work.append((m, a)) }
    }

    let owner = try restoreOwner(options: options, target: target)
    // Tablespace locations, from the final member (the data directory it describes).
    var tablespaceRoots: [UInt32: (location: String, root: String)] = [:]
    for a in final.contents.archives {
        guard let oid = a.tablespaceOID else { continue }
        guard let loc = a.tablespaceLocation else { throw WalctlError.refused("backup \(final.record.label): tablespace \(oid) has no recorded location") }
        let root = options.tablespaceMapping[loc] ?? loc
        guard root.hasPrefix("/") else { throw WalctlError.refused("tablespace \(oid) would be restored to relative path \(root): map it to an absolute path") }
        tablespaceRoots[oid] = (loc, root)
    }

    // One restore at a time into a directory: an flock on the directory itself (nothing is left in
    // the data directory), taken before anything in it changes and held until this function returns.
    var targetLock: Int32 = -1
    defer { if targetLock >= 0 { close(targetLock) } }
    func lockTarget() throws {
        var st = stat()
        guard targetLock < 0, stat(target, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        do {
            guard let fd = try LocalFS.lockDirectory(target) else {
                throw WalctlError.refused("another walctl restore is writing into \(target): wait for it to end")
            }
            targetLock = fd
        } catch let e as LocalFSError { throw WalctlError(e) }
    }
    let keep: Set<String>
    var removed = 0
    try lockTarget()
    if options.delta {
        // Files the newest member gives are not checksummed first: its archive is read anyway, and
        // the writer compares each of them block by block in place (one read of the target's file
        // instead of two). The pre-check is for the older members' files: when all of a member's
        // are right, its archive is not read at all.
        // A native chain's newest manifest names `INCREMENTAL.<file>`: the target has `<file>`, the
        // combined file, which is rewritten in place (NativeCombine), never an INCREMENTAL one.
        let combined = native.map { Set($0.needs[final.record.label, default: [:]].values) } ?? []
        let restores: (String) -> Bool = native == nil ? { manifest!.files[$0] != nil }
            : { (manifest!.files[$0] != nil && NativeRestorePlan.incrementalName($0) == nil) || combined.contains($0) }
        let d = try prepareDelta(target: target, final: final.record, manifest: manifest!, tablespaceRoots: tablespaceRoots,
                                 restores: restores, check: { source($0) != final.record.label })
        keep = d.keep; removed = d.removed
        logger.info("restore \(label) --delta: \(keep.count) file(s) already right, \(manifest!.files.count - keep.count) to compare in place or write, \(removed) removed")
    } else {
        keep = []
        // --force empties a tablespace location that is not empty only when it is this data
        // directory's own (its pg_tblspc/<oid> links to it, seen before the directory is emptied):
        // otherwise it may be another cluster's, the source's on the same host.
        for (oid, t) in tablespaceRoots where force {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: t.root), !names.isEmpty else { continue }
            guard let linked = tablespaceLink(target: target, oid: oid), linked == resolved(t.root) else {
                throw WalctlError.refused("--force: tablespace \(oid) would be restored into \(t.root), which is not empty and is not \(target)'s own tablespace location (no pg_tblspc/\(oid) link to it): it may be another cluster's; map it with --tablespace-mapping \(t.location)=<an empty directory>, or empty it yourself")
            }
        }
        try prepareDirectory(target, force: force, what: "target data directory", owner: owner)
        try lockTarget()  // made just now
    }
    if !keep.isEmpty {
        // --delta: an older member's archive whose every file the target already has is not read
        // (a delta over the full backup of its own chain decodes only the newer members').
        work = work.filter { needed($0.member, $0.archive, already: keep) }
    }
    let download = work.reduce(Int64(0)) { $0 + $1.archive.storedSize }
    if chain.count > 1 {
        logger.info("restore \(label): chain \(chain.map(\.record.label).joined(separator: " -> ")), \(Human.bytes(download)) to download from \(work.count) archive(s) of \(Set(work.map(\.member.record.label)).count) member(s)")
    }

    let tablespaceTargets = Dictionary(tablespaceRoots.values.map { ($0.location, $0.root) }, uniquingKeysWith: { a, _ in a })
    // The links this restore makes (pg_tblspc/<oid> of each tablespace it restores): no writer, of
    // any member or thread, ever writes beneath one (RestoreWriter.plannedLinks). Known before any
    // archive is read, so the rule does not depend on which archive comes first.
    let plannedLinks = Set(tablespaceRoots.keys.map { target + "/pg_tblspc/\($0)" })

    // Every archive's codec, root and manifest prefix, and every tablespace location made ready,
    // before any archive is read: the archives may then be restored in any order, at once.
    var items: [RestoreItem] = []
    var prepared = Set<UInt32>()
    for (m, a) in work {
        guard let codec = CodecKind(rawValue: a.codec) else {
            throw WalctlError.refused("backup \(m.record.label): archive \(a.object) uses unknown codec \(a.codec)")
        }
        if let oid = a.tablespaceOID {
            guard let t = tablespaceRoots[oid] else { continue }  // not in the final data directory
            var rst = stat()
            if !prepared.contains(oid) && (!options.delta || stat(t.root, &rst) != 0) {
                try prepareDirectory(t.root, force: force, what: "tablespace \(oid) location", owner: owner)
                logger.info("restore \(label): tablespace \(oid) (\(t.location)) into \(t.root)")
            }
            prepared.insert(oid)
            items.append(RestoreItem(member: m, archive: a, codec: codec, root: t.root, manifestPrefix: "pg_tblspc/\(oid)/"))
        } else {
            items.append(RestoreItem(member: m, archive: a, codec: codec, root: target, manifestPrefix: ""))
        }
    }

    // Progress: stored bytes read, of the archives' stored sizes (known exactly from backup.json).
    let shown = progress.start("restore \(label)", unit: .bytes, total: download)
    defer { shown.finish() }

    /// Streams one archive: repository -> CRC-32C -> decompressor -> tar reader -> writer. Stops
    /// (throws) at the next chunk once `run` is cancelled (another archive failed).
    func restoreArchive(_ item: RestoreItem, run: RestoreRun) throws -> RestoreTally {
        let m = item.member, a = item.archive
        let isFinal = m.record.label == final.record.label
        let member = m.record.label
        let writer = RestoreWriter(root: item.root, manifestPrefix: item.manifestPrefix, manifest: manifest, owner: owner,
                                   tablespaceTargets: tablespaceTargets, isBase: a.tablespaceOID == nil)
        writer.filesOnly = !isFinal || a.part != nil  // an older member's, or a part (files only)
        writer.replace = options.delta
        writer.plannedLinks = plannedLinks
        if sources != nil || options.delta {
            writer.wanted = { key in
                guard manifest?.files[key] != nil else { return false }  // an older member's file the final backup no longer has
                return source(key) == member && !keep.contains(key)
            }
        }
        let nativeVisitor = native.map {
            NativeChainVisitor(inner: isFinal ? writer : nil, combine: combine, needs: $0.needs[member] ?? [:],
                               manifest: $0.manifests[member]!, root: item.root, manifestPrefix: item.manifestPrefix,
                               isFinal: isFinal, owner: owner)
        }
        nativeVisitor?.delta = options.delta
        let tar = TarReader(visitor: nativeVisitor ?? writer)
        let decompressor = try codecCall(a.object) { () throws(CodecError) in try item.codec.makeDecompressor() }
        var crc = CRC32C()
        var n: Int64 = 0
        do {
            try repository.store.read(key: m.prefix + a.object) { chunk in
                if run.isCancelled { throw RestoreRun.Cancelled() }
                crc.update(chunk)
                n += Int64(chunk.count)
                shown.add(Int64(chunk.count))
                try decompressor.update(chunk) { try tar.feed($0) }
            }
            try decompressor.finish { try tar.feed($0) }
            try tar.finish()
        } catch let e as CodecError {
            throw WalctlError.codec(name: m.prefix + a.object, e)
        } catch let e as StoreError {
            throw WalctlError.store(e)
        } catch let e as TarError {
            throw WalctlError.refused("backup \(m.record.label): \(a.object): \(e)")
        }
        writer.close()
        let storedCRC = ArchivedFileMeta.hex(crc.value)
        guard n == a.storedSize, storedCRC == a.storedCRC32C else {
            throw WalctlError.checksumMismatch(name: m.prefix + a.object, expected: a.storedCRC32C, actual: storedCRC,
                                               size: n, expectedSize: a.storedSize)
        }
        var t = RestoreTally()
        t.files = writer.files; t.verified = writer.verified; t.bytes = writer.bytes; t.storedBytes = n
        t.seen = writer.seen
        if let v = nativeVisitor, isFinal { t.files += v.files; t.verified += v.verified; t.bytes += v.bytes; t.seen.formUnion(v.seen) }
        else if let v = nativeVisitor { t.verified += v.verified }
        t.dirs = Set(writer.dirs.map { item.manifestPrefix + $0 })
        t.groupAccess = writer.groupAccess
        t.unchangedBytes = writer.keptInPlace; t.rewrittenBytes = writer.rewrittenInPlace; t.untouchedFiles = writer.untouchedInPlace
        return t
    }

    // A file-level chain's archives are independent once the locations are ready: each file of the
    // final manifest comes from exactly one member, only the newest makes directories and links,
    // and a directory an older member's file needed first gets its mode from the newest member
    // whenever it arrives (RestoreWriter). So they are restored at once, one per core: the chain
    // then costs about what its largest archive does instead of the sum (docs/backup.md). A
    // PostgreSQL 17+ native chain stays sequential: NativeCombine's state (each combined file's
    // blocks, newest member first) is shared by its archives and depends on their order.
    var workers = options.parallel > 0 ? options.parallel : ProcessInfo.processInfo.activeProcessorCount
    workers = native != nil ? 1 : max(1, min(workers, items.count))
    if workers > 1 {
        // The largest archives first: the last one to start is then a small one.
        items = items.enumerated().sorted { ($0.element.archive.storedSize, -$0.offset) > ($1.element.archive.storedSize, -$1.offset) }.map(\.element)
        logger.debug("restore \(label): \(items.count) archive(s) on \(workers) threads")
    }
    let total = try RestoreRun.perform(items, workers: workers, restoreArchive)
    shown.finish()
    // A file compared in place and found right was not written: it counts as kept.
    let files = total.files - total.untouchedFiles, verified = total.verified, bytes = total.bytes, storedBytes = total.storedBytes
    let seen = total.seen, seenDirs = total.dirs, groupAccess = total.groupAccess
    if let manifest {
        let missing = manifest.files.keys.filter { !seen.contains($0) && !keep.contains($0) }.sorted()
        guard missing.isEmpty else {
            throw WalctlError.refused("backup \(label) is incomplete: \(missing.count) file(s) in its manifest are not in its archives\(chain.count > 1 ? " (chain \(chain.map(\.record.label).joined(separator: " -> ")))" : ""), first \(missing[0]) (expected from \(source(missing[0])))")
        }
    }
    if options.delta {
        removed += removeStaleDirectories(target, keep: seenDirs)
    }
    if !combine.incomplete.isEmpty {
        throw WalctlError.chainDamaged("backup \(label): \(combine.incomplete.count) file(s) could not be combined (no older member gave their full version), first \(combine.incomplete[0])")
    }
    // A native chain's manifest lists INCREMENTAL files, not the combined ones: it is not written.
    if let mb = manifestBytes, native == nil {
        if options.delta { unlink(target + "/backup_manifest") }
        try writeFile(target + "/backup_manifest", mb, mode: 0o600, owner: owner)
    }
    // Mode of the data directory: PostgreSQL refuses anything but 0700 or 0750.
    if chmod(target, groupAccess ? 0o750 : 0o700) != 0 { throw WalctlError.file(operation: "chmod", path: target, errno: errno) }
    try syncTree(target)
    for t in tablespaceTargets.values { try syncTree(t) }

    var report = RestoreReport(label: label, files: files, bytes: bytes, storedBytes: storedBytes, verifiedFiles: verified,
                               seconds: Date().timeIntervalSince(began))
    report.chain = chain.map(\.record.label)
    report.keptFiles = keep.count + total.untouchedFiles
    report.removedFiles = removed
    report.unchangedBytes = total.unchangedBytes + combine.keptBytes
    report.rewrittenBytes = total.rewrittenBytes + combine.rewrittenBytes
    // No line here: the caller prints the result once (restore-backup printed it twice).
    return report
}

/// `--delta`: checks `target` is a stopped data directory of the backup's cluster, finds the files
/// for which `check` holds that already match the manifest (size and CRC-32C), and removes every
/// file the restore does not write (`restores`: the manifest's paths; for a native chain the
/// combined files instead of their `INCREMENTAL.` names), pg_wal's contents included. Returns the
/// kept manifest paths and the number removed.
private func prepareDelta(target: String, final: BackupRecord, manifest: ServerManifest,
                          tablespaceRoots: [UInt32: (location: String, root: String)],
                          restores: (String) -> Bool,
                          check: (String) -> Bool) throws -> (keep: Set<String>, removed: Int) {
    var st = stat()
    guard stat(target, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
        throw WalctlError.refused("--delta restores into an existing data directory, and \(target) is not one: restore without --delta")
    }
    if let pid = RunningServer.pid(in: target) {
        throw WalctlError.refused("target data directory \(target) belongs to a running PostgreSQL server (pid \(pid)): stop it first")
    }
    guard let c = try systemIdentifierBytes(target + "/global/pg_control") else {
        throw WalctlError.refused("--delta: \(target) has no global/pg_control: it is not a data directory of this cluster; restore without --delta (into an empty directory, or --force)")
    }
    let sid = c.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    guard String(sid) == final.systemIdentifier else {
        throw WalctlError.refused("--delta: \(target) belongs to database system \(sid), backup \(final.label) to \(final.systemIdentifier): refusing to mix clusters; restore without --delta")
    }
    // Each tablespace is restored into its location (the backup's, or its --tablespace-mapping).
    // When that location exists, --delta works in it in place, so it must be this data directory's
    // own: pg_tblspc/<oid> must already link to it. Otherwise it may be another cluster's (the
    // source's, on the same host), which must never be written or swept.
    for (oid, t) in tablespaceRoots.sorted(by: { $0.key < $1.key }) {
        var rst = stat()
        guard stat(t.root, &rst) == 0 else { continue }  // made anew, as without --delta
        let link = target + "/pg_tblspc/\(oid)"
        let linked = tablespaceLink(target: target, oid: oid)
        guard let linked, linked == resolved(t.root) else {
            throw WalctlError.refused("--delta: tablespace \(oid) would be restored into \(t.root), which exists, but \(link) \(linked.map { "points at \($0)" } ?? "is not a link to it"): that location is not this data directory's (it may be another cluster's); map it with --tablespace-mapping \(t.location)=<this cluster's location>, or restore without --delta")
        }
    }
    // The top-level names each restored tablespace's files live under (its PG_<major>_<catversion>
    // directory): the sweep leaves anything else in the location alone (another major version's
    // directory after pg_upgrade).
    var tablespaceTops: [UInt32: Set<String>] = [:]
    for p in manifest.files.keys where p.hasPrefix("pg_tblspc/") {
        let parts = p.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count >= 3, let oid = UInt32(parts[1]) else { continue }
        tablespaceTops[oid, default: []].insert(String(parts[2]))
    }
    // Remove what the manifest does not have, first (so a link planted where a directory belongs
    // is gone before any file below it is judged): files, links other than the tablespaces', a
    // directory at a file's name, pg_wal's contents.
    var removed = 0
    func sweep(_ dir: String, manifestPrefix: String) throws {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names {
            let full = dir + "/" + name
            let key = manifestPrefix + name
            var est = stat()
            guard lstat(full, &est) == 0 else { continue }
            switch est.st_mode & S_IFMT {
            case S_IFDIR:
                if restores(key) {
                    do { try FileManager.default.removeItem(atPath: full) } catch {
                        throw WalctlError.file(operation: "remove", path: full, errno: EACCES)
                    }
                    removed += 1
                } else {
                    try sweep(full, manifestPrefix: key + "/")
                }
            case S_IFLNK:
                if manifestPrefix == "pg_tblspc/", let oid = UInt32(name), let t = tablespaceRoots[oid] {
                    // Only through a link to the location this restore writes (checked above when
                    // it exists); a link elsewhere is replaced by the restore, never followed.
                    if let r = tablespaceLink(target: target, oid: oid), r == resolved(t.root) {
                        let tops = tablespaceTops[oid] ?? []
                        for top in (try? FileManager.default.contentsOfDirectory(atPath: full)) ?? [] where tops.contains(top) {
                            var tst = stat()
                            guard lstat(full + "/" + top, &tst) == 0 else { continue }
                            if (tst.st_mode & S_IFMT) == S_IFDIR {
                                try sweep(full + "/" + top, manifestPrefix: key + "/" + top + "/")
                            } else {  // a link or a file where the version directory belongs
                                if unlink(full + "/" + top) != 0 { throw WalctlError.file(operation: "remove", path: full + "/" + top, errno: errno) }
                                removed += 1
                            }
                        }
                        continue
                    }
                }
                if unlink(full) != 0 { throw WalctlError.file(operation: "remove", path: full, errno: errno) }
                removed += 1
            default:
                if restores(key) { continue }
                if unlink(full) != 0 { throw WalctlError.file(operation: "remove", path: full, errno: errno) }
                removed += 1
            }
        }
    }
    try sweep(target, manifestPrefix: "")
    // Local path of a manifest path.
    func local(_ p: String) -> String? {
        if p.hasPrefix("pg_tblspc/") {
            let rest = p.dropFirst("pg_tblspc/".count)
            guard let slash = rest.firstIndex(of: "/"), let oid = UInt32(rest[..<slash]), let t = tablespaceRoots[oid] else { return nil }
            return t.root + "/" + rest[rest.index(after: slash)...]
        }
        return target + "/" + p
    }
    var keep = Set<String>()
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    for (p, f) in manifest.files where f.algorithm == "CRC32C" && !BackupExclusions.selfChecksummed(p) && check(p) {
        guard let path = local(p), let expected = f.checksum else { continue }
        var fst = stat()
        guard lstat(path, &fst) == 0, (fst.st_mode & S_IFMT) == S_IFREG, Int64(fst.st_size) == f.size else { continue }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { continue }
        var crc = CRC32C()
        var total: Int64 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buffer.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            total += Int64(n)
        }
        close(fd)
        if total == f.size && ServerManifest.crc32cHex(crc.value) == expected { keep.insert(p) }
    }
    return (keep, removed)
}

/// `path` with every link resolved, nil when it does not exist.
private func resolved(_ p: String) -> String? {
    guard let r = realpath(p, nil) else { return nil }
    defer { free(r) }
    return String(cString: r)
}

/// Where `target`'s `pg_tblspc/<oid>` leads (resolved), nil when it is not a symbolic link or leads
/// nowhere: the location a data directory already uses for that tablespace.
private func tablespaceLink(target: String, oid: UInt32) -> String? {
    let link = target + "/pg_tblspc/\(oid)"
    var st = stat()
    guard lstat(link, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { return nil }
    return resolved(link)
}

/// `--delta`: removes the empty directories of `root` the backup does not have (a dropped
/// database's), deepest first. Returns how many.
private func removeStaleDirectories(_ root: String, keep: Set<String>) -> Int {
    var removed = 0
    func visit(_ dir: String, rel: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names {
            let full = dir + "/" + name
            var st = stat()
            guard lstat(full, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
            let r = rel.isEmpty ? name : rel + "/" + name
            visit(full, rel: r)
            if !keep.contains(r), rmdir(full) == 0 { removed += 1 }
        }
    }
    visit(root, rel: "")
    return removed
}

/// A repository call, its `StoreError` as walctl's `repo-io` error.
func storeCall<T>(_ body: () throws -> T) throws -> T {
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
    if let pid = RunningServer.pid(in: dir) {
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
    /// Directories of the archive (paths inside it).
    private(set) var dirs = Set<String>()
    /// Which files to write (by manifest path); nil: all. The others are read past.
    var wanted: ((String) -> Bool)?
    /// An older chain member: only its files, no directories or links (the newest member made them).
    var filesOnly = false
    /// `--delta`: files and links may already exist and are replaced.
    var replace = false
    /// The tablespace links the whole restore makes (full paths), whichever writer makes them:
    /// nothing is ever written beneath one, even before it exists (another thread's writer may be
    /// about to make it), and no other link is made (a tablespace link without the tablespace's
    /// archive). nil for a writer used alone: only its own links are checked.
    var plannedLinks: Set<String>?
    private var skipping = false

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
        if e.kind == .directory { dirs.insert(e.path) }
        if filesOnly && (e.kind == .directory || e.kind == .symlink) { return }
        if e.kind == .file, let wanted, !wanted(manifestPrefix + e.path) { skipping = true; return }
        if !links.isEmpty, links.contains(where: { full == $0 || full.hasPrefix($0 + "/") }) {
            throw WalctlError.refused("backup archive member \(e.path) lies under the symbolic link it made before: refusing to write through it")
        }
        if let planned = plannedLinks, let link = planned.first(where: { full.hasPrefix($0 + "/") }) {
            throw WalctlError.refused("backup archive member \(e.path) lies under \(link), the tablespace link this restore makes: refusing to write through it")
        }
        try ensureParent(of: full)
        switch e.kind {
        case .directory:
            if mkdir(full, mode_t(e.mode & 0o777)) != 0 {
                guard errno == EEXIST else { throw WalctlError.file(operation: "mkdir", path: full, errno: errno) }
            }
            // Exactly the archive's mode (not narrowed by the umask), whether this mkdir made the
            // directory or an older member's file made it first (ensureParent, 0700: the archives
            // of a chain are restored at once, in no fixed order) or it was there (--delta).
            _ = chmod(full, mode_t(e.mode & 0o777))
            if let o = owner { _ = chown(full, o.uid, o.gid) }
            createdDirs.insert(full)
            if isBase && e.path == "global" && e.mode & 0o070 != 0 { groupAccess = true }
        case .symlink:
            // PostgreSQL links only tablespaces (pg_tblspc/<oid>) in its archives.
            guard isBase, e.path.hasPrefix("pg_tblspc/"), !e.path.dropFirst(10).contains("/") else {
                throw WalctlError.refused("unexpected symbolic link \(e.path) -> \(e.linkTarget) in backup archive")
            }
            if let planned = plannedLinks, !planned.contains(full) {
                throw WalctlError.refused("backup archive links \(e.path) -> \(e.linkTarget), but the backup has no archive for that tablespace: refusing to restore it")
            }
            let dest = tablespaceTargets[e.linkTarget] ?? e.linkTarget
            if replace { unlink(full) }
            if symlink(dest, full) != 0 { throw WalctlError.file(operation: "symlink", path: full, errno: errno) }
            links.insert(full)
            if let o = owner { _ = lchown(full, o.uid, o.gid) }
        case .file:
            path = full
            crc = CRC32C()
            written = 0
            inPlace = false
            if replace, openInPlace(full, mode: mode_t(e.mode & 0o777)) { break }
            if replace { unlink(full) }
            do { fd = try LocalFS.createExclusive(full, mode: mode_t(e.mode & 0o777)) } catch { throw WalctlError(error) }
            if let o = owner { _ = fchown(fd, o.uid, o.gid) }
        case .hardlink, .other:
            throw WalctlError.refused("unsupported member \(e.path) (type \(e.kind)) in backup archive")
        }
    }

    func data(_ b: UnsafeRawBufferPointer) throws {
        if skipping { return }
        crc.update(b)
        if inPlace {
            try rewriteInPlace(b, at: written)
        } else {
            do { try LocalFS.writeAll(fd, b, path: path) } catch { throw WalctlError(error) }
        }
        written += Int64(b.count)
    }

    // MARK: --delta, block by block

    /// `--delta` rewrites a file that is already there in place, block by block: only the 8 KiB
    /// blocks that differ from the archive's are written (a table whose few pages changed costs
    /// those pages, not the file), then the file is cut to the archive's size. Only a regular file
    /// with one link (a file hard-linked elsewhere, as `pg_upgrade --link` leaves them, is replaced
    /// instead: writing into it would change the other cluster) that this process can open for
    /// writing; anything else is removed and written anew.
    private var inPlace = false
    private var existingSize: Int64 = 0
    private var scratch: UnsafeMutableRawBufferPointer?
    /// Bytes of files rewritten in place that were already right (not written), and that were written;
    /// files compared in place that needed no write at all.
    private(set) var keptInPlace: Int64 = 0
    private(set) var rewrittenInPlace: Int64 = 0
    private(set) var untouchedInPlace = 0
    private var rewrittenAtStart: Int64 = 0
    static let deltaBlock = 8192

    private func openInPlace(_ full: String, mode: mode_t) -> Bool {
        guard let (f, size) = LocalFS.openForRewrite(full) else { return false }
        _ = fchmod(f, mode)
        if let o = owner { _ = fchown(f, o.uid, o.gid) }
        fd = f
        existingSize = size
        rewrittenAtStart = rewrittenInPlace
        inPlace = true
        return true
    }

    /// Compares `b` (the archive's bytes at `offset`) with the file's and writes the blocks that differ.
    private func rewriteInPlace(_ b: UnsafeRawBufferPointer, at offset: Int64) throws {
        guard b.count > 0 else { return }
        if scratch == nil || scratch!.count < b.count {
            scratch?.deallocate()
            scratch = .allocate(byteCount: max(b.count, 1 << 20), alignment: 4096)
        }
        let old = scratch!
        // What the file has at this offset (less, or nothing, past its end).
        var have = 0
        if offset < existingSize {
            let want = Int(min(Int64(b.count), existingSize - offset))
            while have < want {
                let n = pread(fd, old.baseAddress! + have, want - have, off_t(offset) + off_t(have))
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw WalctlError.file(operation: "read", path: path, errno: errno) }
                if n == 0 { break }
                have += n
            }
        }
        // Runs of differing blocks, each written with one pwrite.
        var i = 0
        var runStart = -1
        func flush(_ end: Int) throws {
            guard runStart >= 0 else { return }
            let run = UnsafeRawBufferPointer(rebasing: b[runStart..<end])
            try NativeCombine.write(fd, run, at: offset + Int64(runStart), path: path)
            rewrittenInPlace += Int64(run.count)
            runStart = -1
        }
        while i < b.count {
            let end = min(i + Self.deltaBlock, b.count)
            let same = end <= have && memcmp(b.baseAddress! + i, old.baseAddress! + i, end - i) == 0
            if same {
                try flush(i)
                keptInPlace += Int64(end - i)
            } else if runStart < 0 {
                runStart = i
            }
            i = end
        }
        try flush(b.count)
    }

    func end(_ e: TarEntry) throws {
        guard e.kind == .file else { return }
        if skipping { skipping = false; return }
        if inPlace && existingSize > written && ftruncate(fd, off_t(written)) != 0 {
            throw WalctlError.file(operation: "truncate", path: path, errno: errno)
        }
        if inPlace && existingSize == written && rewrittenInPlace == rewrittenAtStart { untouchedInPlace += 1 }
        inPlace = false
        close()
        files += 1
        bytes += written
        let key = manifestPrefix + e.path
        guard let manifest else { return }
        // The server adds backup_label and tablespace_map to the manifest; nothing else should be extra.
        seen.insert(key)
        try manifest.verify(key, size: written, crc32c: crc.value)
        verified += 1
    }

    func close() { if fd >= 0 { Foundation.close(fd); fd = -1 } }
    deinit { close(); scratch?.deallocate() }
}
