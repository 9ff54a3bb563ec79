import Foundation

/// An encrypted repository's store: every object is encrypted on the way in and authenticated and
/// decrypted on the way out (ChunkFormat), keyed by its name; `repository.json` (the binding, which
/// holds the wrapped key) stays plaintext. Names, sizes and times are not hidden (docs/encryption.md).
///
/// It keeps the five-method ObjectStore contract: callers write and read the same bytes as with a
/// plain store (compressed data, JSON), so nothing above it knows. `head` and `list` report the
/// stored (encrypted) sizes.
public final class EncryptedStore: ObjectStore {
    public let base: ObjectStore
    let dataKey: [UInt8]
    let chunkSize: Int

    public init(base: ObjectStore, dataKey: [UInt8], chunkSize: Int = ChunkFormat.defaultChunkSize) {
        precondition(dataKey.count == 32)
        self.base = base; self.dataKey = dataKey; self.chunkSize = chunkSize
    }

    public var location: String { base.location }

    /// The kind authenticated with an object (so an object can never stand in for one of another
    /// kind), or nil for the objects stored in plaintext (the binding).
    public static func kind(of key: String) -> String? {
        if key == RepositoryLayout.infoKey { return nil }
        if key.hasPrefix(RepositoryLayout.walPrefix) {
            if key.hasSuffix(RepositoryLayout.metaSuffix) { return "meta" }
            if key.hasSuffix(RepositoryLayout.skippedSuffix) { return "skip" }
            return "wal"
        }
        if key.hasPrefix(RepositoryLayout.backupPrefix) {
            let file = key.split(separator: "/").last.map(String.init) ?? ""
            if file == "backup.json" { return "backup-info" }
            if file.hasPrefix("backup_manifest") { return "manifest" }
            return "backup"
        }
        return "object"
    }

    public func makeWriter(key: String, options: PutOptions) throws(StoreError) -> ObjectWriter {
        let w = try base.makeWriter(key: key, options: options)
        guard let kind = Self.kind(of: key) else { return w }
        do {
            return EncryptingWriter(base: w, sealer: try ObjectSealer(dataKey: dataKey, kind: kind, name: key, chunkSize: chunkSize))
        } catch {
            w.abort()
            throw StoreError.configuration("cannot encrypt \(key): \(error)")
        }
    }

    public func read(key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let kind = Self.kind(of: key) else { return try base.read(key: key, into: sink) }
        let opener = ObjectOpener(dataKey: dataKey, kind: kind, name: key)
        try base.read(key: key) { try opener.update($0, emit: sink) }
        try opener.finish(emit: sink)
    }

    /// A decryptor for an object held elsewhere (`walctl decrypt` of a local copy).
    public func opener(kind: String, name: String) -> ObjectOpener { ObjectOpener(dataKey: dataKey, kind: kind, name: name) }

    public func head(key: String) throws(StoreError) -> ObjectInfo? { try base.head(key: key) }
    public func list(prefix: String) throws(StoreError) -> [ObjectInfo] { try base.list(prefix: prefix) }
    public func delete(key: String) throws(StoreError) { try base.delete(key: key) }
}

/// Encrypts on the way to the base writer; nothing is visible until `commit` (the base writer's).
final class EncryptingWriter: ObjectWriter {
    let base: ObjectWriter
    let sealer: ObjectSealer
    private var failed = false

    init(base: ObjectWriter, sealer: ObjectSealer) { self.base = base; self.sealer = sealer }

    private func forward(_ body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws(StoreError) {
        guard !failed else { throw StoreError.configuration("write after a failed encryption") }
        do {
            try body { (b: UnsafeRawBufferPointer) throws in try base.write(b) }
        } catch let e as StoreError {
            failed = true; throw e
        } catch {
            failed = true; throw StoreError.configuration("encryption failed: \(error)")
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        try forward { emit in try sealer.update(bytes, emit: emit) }
    }

    func commit() throws(StoreError) {
        try forward { emit in try sealer.finish(emit: emit) }
        try base.commit()
    }

    func abort() { base.abort() }
}

// The capabilities other code finds by casting the store pass through to the base store (listings
// and sweeps see the stored objects, names in plaintext).
extension EncryptedStore: DetailedListing {
    public func childPrefixes(of prefix: String) throws(StoreError) -> [String] {
        if let d = base as? DetailedListing { return try d.childPrefixes(of: prefix) }
        var set = Set<String>()
        for o in try base.list(prefix: prefix) {
            let rest = o.key.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") { set.insert(prefix + rest[..<slash] + "/") }
        }
        return set.sorted()
    }

    public func listDetailed(prefix: String) throws(StoreError) -> [ListedObject] {
        if let d = base as? DetailedListing { return try d.listDetailed(prefix: prefix) }
        return try base.list(prefix: prefix).map { ListedObject(key: $0.key, size: $0.size) }
    }
}

extension EncryptedStore: LeftoverSweeping {
    public func removeLeftovers(besideKey key: String, olderThan age: TimeInterval) -> [String] {
        (base as? LeftoverSweeping)?.removeLeftovers(besideKey: key, olderThan: age) ?? []
    }
}
