import Foundation
import LocalFS

/// A store that can remove what interrupted writes left behind.
///
/// FileStore writes each object to a hidden temporary name in its final directory, fsyncs it, then
/// links or renames it into place; a writer killed in between (SIGKILL, a crash, a power loss after
/// the fsync) leaves the hidden temporary object, which `list` skips. On S3 the equivalent is an
/// incomplete multipart upload, which no listing shows either: a bucket lifecycle rule
/// (`AbortIncompleteMultipartUpload`) removes those (docs/operator-guide.md).
public protocol LeftoverSweeping: AnyObject {
    /// Removes temporary objects older than `age` seconds from the directory that holds `key` (the key
    /// prefix up to its last `/`). Returns the names removed. Best effort: a directory that cannot be
    /// read, or a file already gone, is no failure (the next sweep tries again).
    func removeLeftovers(besideKey key: String, olderThan age: TimeInterval) -> [String]
}

extension FileStore: LeftoverSweeping {
    /// True for the names FileStore's writer gives its temporary objects: `.<name>.tmp.<pid>.<random>`.
    public static func isTemporaryName(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".tmp.")
    }

    public func removeLeftovers(besideKey key: String, olderThan age: TimeInterval) -> [String] {
        let dirKey = key.lastIndex(of: "/").map { String(key[..<$0]) } ?? ""
        let dirPath = dirKey.isEmpty ? root : root + "/" + dirKey
        guard let dir = opendir(dirPath) else { return [] }
        defer { closedir(dir) }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var removed: [String] = []
        let fd = dirfd(dir)
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name) ?? 19
        while let ent = readdir(dir) {
            // Only hidden names are looked at further (read in place, no copy): a directory of
            // segments costs one readdir.
            let namePtr = UnsafeRawPointer(ent).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
            guard namePtr.pointee == CChar(UInt8(ascii: ".")) else { continue }
            let name = String(cString: namePtr)
            guard Self.isTemporaryName(name) else { continue }
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            let ageSeconds = Double(now.tv_sec - st.st_mtim.tv_sec)
            guard ageSeconds > age else { continue }
            if unlinkat(fd, name, 0) == 0 { removed.append(name) }
        }
        return removed
    }
}

/// A store whose committed objects may sit only in the page cache for a while (a filesystem: another
/// writer linked them in but may not have reached its directory fsync yet, or crashed before it).
/// A caller about to report an object it did not write itself as durable (archive-push finding the
/// segment already archived, or losing the if-absent race) makes it durable first. On S3 an object is
/// durable once listed or read, so the S3 store does not conform.
public protocol DurabilityConfirming: AnyObject {
    /// fdatasync of each object `keys` names, then fsync of each directory holding one.
    func makeDurable(keys: [String]) throws(StoreError)
}

extension FileStore: DurabilityConfirming {
    public func makeDurable(keys: [String]) throws(StoreError) {
        var directories: [String] = []
        for key in keys {
            let p = path(key)
            do { try LocalFS.syncFile(p) } catch { throw StoreError(error) }
            let d = LocalFS.directory(of: p)
            if !directories.contains(d) { directories.append(d) }
        }
        for d in directories {
            do { try LocalFS.syncDirectory(d) } catch { throw StoreError(error) }
        }
    }
}
