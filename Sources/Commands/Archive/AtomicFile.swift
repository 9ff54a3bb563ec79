import LocalFS

/// A file written under an unpredictable temporary name in the target's directory (LocalFS's
/// `AtomicWriter`: `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600), then renamed over the target. Until
/// `commit` the target is untouched.
///
/// `durable` fdatasyncs the file before the rename (archive-get's `%p`): a write error is reported
/// while PostgreSQL can still retry, and PostgreSQL's own `durable_rename` of the restored file
/// (KeepFileRestoredFromArchive) then finds it clean and syncs the directory. Non-durable files are
/// for spools whose records guard against an OS crash themselves.
public final class AtomicFile {
    public let path: String
    let file: AtomicWriter

    /// Writes go straight to write(2), unbuffered: the decoders hand over whole buffers (1 MiB from
    /// `ZstdDecompressor`, 256 KiB from FastPath's `WriteBehind`), and gathering them would only copy them again.
    public init(path: String, durable: Bool = true) throws(WalctlError) {
        self.path = path
        do { file = try AtomicWriter(path: path, durability: durable ? .data : .none, buffered: false) } catch { throw WalctlError(error) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        do { try file.write(bytes) } catch { throw WalctlError(error) }
    }

    public func commit() throws {
        do { try file.commit() } catch { throw WalctlError(error) }
    }

    public func abort() { file.abort() }
}
