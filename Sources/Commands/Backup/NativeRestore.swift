import Foundation
import LocalFS
import WALFormat

/// What each member of a PostgreSQL 17+ native incremental chain gives to a restore (docs/backup.md,
/// "Native incremental backups"), computed from the members' manifests before anything is written.
///
/// A file the newest member stores whole comes from it alone. A file it stores as
/// `INCREMENTAL.<name>` needs, going back through the chain, each older member's `INCREMENTAL.<name>`
/// up to and including the first member that stores `<name>` whole. A missing link (a member with
/// neither) is `chain-damaged`, reported before anything is written.
struct NativeRestorePlan {
    /// Per member label: the manifest paths (as that member's archives name them) it must give,
    /// each mapped to the data directory path it is combined into.
    var needs: [String: [String: String]] = [:]
    /// Per member label: its own manifest (each member's files are verified against it).
    var manifests: [String: ServerManifest] = [:]
    let finalLabel: String

    /// `base/5/INCREMENTAL.16384` -> `base/5/16384`; nil for any other path.
    static func incrementalName(_ path: String) -> String? {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard base.hasPrefix("INCREMENTAL."), base.count > 12 else { return nil }
        return dir + base.dropFirst(12)
    }

    /// `base/5/16384` -> `base/5/INCREMENTAL.16384`.
    static func incrementalPath(_ name: String) -> String {
        let slash = name.lastIndex(of: "/")
        let dir = slash.map { String(name[...$0]) } ?? ""
        let base = slash.map { String(name[name.index(after: $0)...]) } ?? name
        return dir + "INCREMENTAL." + base
    }

    init(chain: [ChainMember]) throws {
        guard let final = chain.last else { throw WalctlError.refused("empty chain") }
        finalLabel = final.record.label
        for m in chain {
            guard let mb = m.manifestBytes else {
                throw WalctlError.chainDamaged("backup \(m.record.label) of \(finalLabel)'s chain has no backup_manifest: a native incremental chain cannot be combined without it; nothing was written")
            }
            manifests[m.record.label] = try ServerManifest(json: mb)
        }
        let finalManifest = manifests[finalLabel]!
        for p in finalManifest.files.keys {
            guard let name = Self.incrementalName(p) else { continue }
            needs[finalLabel, default: [:]][p] = name
            var found = false
            for m in chain.dropLast().reversed() {
                let mf = manifests[m.record.label]!
                let inc = Self.incrementalPath(name)
                if mf.files[name] != nil {
                    needs[m.record.label, default: [:]][name] = name
                    found = true
                    break
                } else if mf.files[inc] != nil {
                    needs[m.record.label, default: [:]][inc] = name
                } else {
                    throw WalctlError.chainDamaged("backup \(m.record.label) of \(finalLabel)'s chain has neither \(name) nor its INCREMENTAL file, which \(finalLabel) builds on: the chain is broken; nothing was written")
                }
            }
            guard found else {
                throw WalctlError.chainDamaged("no member of \(finalLabel)'s chain stores \(name) whole (its full backup should): the chain is broken; nothing was written")
            }
        }
    }

    /// True when `member` must read `archive` (an archive of the tablespace `tablespaceOID`, nil for base).
    func needed(member: String, tablespaceOID: UInt32?) -> Bool {
        if member == finalLabel { return true }
        let prefix = tablespaceOID.map { "pg_tblspc/\($0)/" }
        return needs[member]?.keys.contains { prefix.map($0.hasPrefix) ?? !$0.hasPrefix("pg_tblspc/") } ?? false
    }
}

/// The tar visitor of one archive of a native incremental chain's restore: `INCREMENTAL.` members
/// (and, in older members, the full versions a combination needs) are combined here by
/// `NativeCombine`, each verified against its own member's manifest (size, and CRC-32C) as it
/// streams; in the newest member every other member goes to `inner`, the ordinary restore writer.
final class NativeChainVisitor: TarVisitor {
    let inner: RestoreWriter?
    let combine: NativeCombine
    let needs: [String: String]
    let manifest: ServerManifest
    let root: String
    let manifestPrefix: String
    let isFinal: Bool
    let owner: (uid: uid_t, gid: gid_t)?
    /// `--delta`: the newest member's files may already be in the target: a combined file is
    /// rewritten in place (NativeCombine compares block by block), backup_label replaced.
    var delta = false
    private(set) var seen = Set<String>()
    private(set) var files = 0
    private(set) var verified = 0
    private(set) var bytes: Int64 = 0

    private enum Current {
        case forward
        case skip
        case incremental(IncrementalFileParser, fd: Int32, key: String)
        case full(NativeCombine.FullFileFeeder, fd: Int32, key: String)
        /// The newest member's `backup_label`, rewritten without its `INCREMENTAL FROM` lines.
        case label(path: String, mode: mode_t, key: String)
    }
    private var labelBytes: [UInt8] = []
    private var current = Current.skip
    private var crc = CRC32C()
    private var count: Int64 = 0

    init(inner: RestoreWriter?, combine: NativeCombine, needs: [String: String], manifest: ServerManifest, root: String,
         manifestPrefix: String, isFinal: Bool, owner: (uid: uid_t, gid: gid_t)?) {
        self.inner = inner; self.combine = combine; self.needs = needs; self.manifest = manifest; self.root = root
        self.manifestPrefix = manifestPrefix; self.isFinal = isFinal; self.owner = owner
    }

    private func target(_ p: String) throws -> String {
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        guard !p.isEmpty, !p.hasPrefix("/"), !parts.contains(where: { $0 == ".." || $0.isEmpty }),
              manifestPrefix.isEmpty ? !p.hasPrefix("pg_tblspc/") : true else {
            throw WalctlError.refused("unsafe path \"\(p)\" in backup archive: refusing to restore it")
        }
        return root + "/" + p
    }

    func begin(_ e: TarEntry) throws {
        let key = manifestPrefix + e.path
        if isFinal && manifestPrefix.isEmpty && e.kind == .file && e.path == "backup_label" {
            guard e.size <= 1 << 20 else { throw WalctlError.refused("backup_label of \(e.size) bytes in the backup archive") }
            crc = CRC32C(); count = 0; labelBytes = []
            current = .label(path: try target(e.path), mode: mode_t(e.mode & 0o777), key: key)
            return
        }
        guard e.kind == .file, let name = needs[key] else {
            if isFinal, let inner { current = .forward; try inner.begin(e) } else { current = .skip }
            return
        }
        let local = String(name.dropFirst(manifestPrefix.count))
        let path = try target(local)
        crc = CRC32C(); count = 0
        let fd: Int32
        var inPlace = false
        if isFinal {
            // (The newest member combines only its `INCREMENTAL.` files: `needs` holds nothing else.)
            if delta, let existing = LocalFS.openForRewrite(path) {
                fd = existing.fd
                inPlace = true
                _ = fchmod(fd, mode_t(e.mode & 0o777))
            } else {
                // --delta: whatever is at the name and cannot be rewritten in place (a second hard
                // link, not a regular file) is replaced, as RestoreWriter does.
                if delta && unlink(path) != 0 && errno != ENOENT { throw WalctlError.file(operation: "remove", path: path, errno: errno) }
                do { fd = try LocalFS.createExclusive(path, mode: mode_t(e.mode & 0o777)) } catch { throw WalctlError(error) }
            }
            if let o = owner { _ = fchown(fd, o.uid, o.gid) }
        } else {
            fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)   // read too: --delta compares before it writes
            guard fd >= 0 else {
                throw WalctlError.chainDamaged("\(path): the file an older member's \(e.path) combines into is not there (errno \(errno))")
            }
        }
        if NativeRestorePlan.incrementalName(e.path) != nil {
            current = .incremental(combine.incremental(path: name, fd: fd, filePath: path, memberSize: e.size, newest: isFinal, inPlace: inPlace), fd: fd, key: key)
        } else {
            current = .full(combine.full(path: name, fd: fd, filePath: path), fd: fd, key: key)
        }
    }

    func data(_ b: UnsafeRawBufferPointer) throws {
        switch current {
        case .forward: try inner?.data(b)
        case .skip: return
        case .incremental(let p, _, _): crc.update(b); count += Int64(b.count); try p.feed(b)
        case .full(let f, _, _): crc.update(b); count += Int64(b.count); try f.feed(b)
        case .label: crc.update(b); count += Int64(b.count); labelBytes.append(contentsOf: b)
        }
    }

    func end(_ e: TarEntry) throws {
        let state = current
        current = .skip
        switch state {
        case .forward: try inner?.end(e)
        case .skip: return
        case .incremental(let p, let fd, let key):
            defer { close(fd) }
            try p.finish()
            try check(key)
        case .full(let f, let fd, let key):
            defer { close(fd) }
            try f.finish()
            try check(key)
        case .label(let path, let mode, let key):
            try check(key)
            if delta && unlink(path) != 0 && errno != ENOENT { throw WalctlError.file(operation: "remove", path: path, errno: errno) }
            let fd: Int32
            do { fd = try LocalFS.createExclusive(path, mode: mode) } catch { throw WalctlError(error) }
            defer { close(fd) }
            if let o = owner { _ = fchown(fd, o.uid, o.gid) }
            let out = Self.combinedLabel(labelBytes)
            do { try LocalFS.writeAll(fd, out, path: path) } catch { throw WalctlError(error) }
        }
    }

    /// A combined backup's `backup_label`: the newest member's without its `INCREMENTAL FROM LSN: ` and
    /// `INCREMENTAL FROM TLI: ` lines (pg_combinebackup's write_backup_label; PostgreSQL refuses to
    /// start from a label that still has them).
    static func combinedLabel(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            if end < bytes.count { end += 1 }
            let line = bytes[start..<end]
            if !line.starts(with: Array("INCREMENTAL FROM LSN: ".utf8)) && !line.starts(with: Array("INCREMENTAL FROM TLI: ".utf8)) {
                out.append(contentsOf: line)
            }
            start = end
        }
        return out
    }

    /// The member's bytes against its own manifest entry.
    private func check(_ key: String) throws {
        files += 1; bytes += count
        seen.insert(key)
        try manifest.verify(key, size: count, crc32c: crc.value)
        verified += 1
    }
}
