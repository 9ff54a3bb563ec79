import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import LocalFS

private func tempDir() -> String {
    let d = NSTemporaryDirectory() + "walctl-localfs-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return d
}

private func mode(_ p: String) -> Int {
    var st = stat()
    guard lstat(p, &st) == 0 else { return -1 }
    return Int(st.st_mode & 0o7777)
}

private func entries(_ d: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).sorted() }

@Suite struct LocalFSTests {
    @Test func atomicWriteIsPrivateAndLeavesNothingBehind() throws {
        let d = tempDir()
        try LocalFS.writeFile(d + "/a", Array("one".utf8), durability: .full)
        try LocalFS.writeFile(d + "/a", Array("two".utf8), durability: .none)
        #expect(try LocalFS.readFile(d + "/a") == Array("two".utf8))
        #expect(mode(d + "/a") == 0o600)
        #expect(entries(d) == ["a"])
    }

    /// restore --delta rewrites in place only a regular file with one link, never through a link.
    @Test func openForRewriteOnlyASingleLinkRegularFile() throws {
        let d = tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        try LocalFS.writeFile(d + "/f", Array("12345".utf8), durability: .none)
        let opened = try #require(LocalFS.openForRewrite(d + "/f"))
        #expect(opened.size == 5)
        #expect(pwrite(opened.fd, "x", 1, 0) == 1)
        close(opened.fd)
        #expect(try LocalFS.readFile(d + "/f") == Array("x2345".utf8))
        #expect(LocalFS.openForRewrite(d + "/missing") == nil)
        #expect(symlink(d + "/f", d + "/link") == 0)
        #expect(LocalFS.openForRewrite(d + "/link") == nil)
        #expect(link(d + "/f", d + "/second") == 0)
        #expect(LocalFS.openForRewrite(d + "/f") == nil)
        #expect(mkfifo(d + "/fifo", 0o600) == 0)
        #expect(LocalFS.openForRewrite(d + "/fifo") == nil)  // and does not wait for a writer
        #expect(LocalFS.openForRewrite(d) == nil)
    }

    /// One restore at a time into a directory: the flock is on the directory itself.
    @Test func lockDirectoryIsExclusiveAndLeavesNothing() throws {
        let d = tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let held = try #require(try LocalFS.lockDirectory(d))
        #expect(try LocalFS.lockDirectory(d) == nil)
        close(held)
        let again = try #require(try LocalFS.lockDirectory(d))
        close(again)
        #expect(entries(d).isEmpty)
        #expect(throws: LocalFSError.self) { _ = try LocalFS.lockDirectory(d + "/missing") }
    }

    @Test func temporaryNamesAreUnpredictable() {
        let a = LocalFS.randomName(), b = LocalFS.randomName()
        #expect(a.utf8.count == 16 && b.utf8.count == 16 && a != b)
        #expect(a.allSatisfy { $0.isHexDigit })
    }

    @Test func streamingWriterCommitsOrAborts() throws {
        let d = tempDir()
        let w = try AtomicWriter(path: d + "/big", durability: .data)
        #expect(w.temp.hasPrefix(d + "/.big.tmp."))
        let chunk = [UInt8](repeating: 7, count: 300_000)
        for _ in 0..<10 { try w.write(chunk) }
        #expect(!FileManager.default.fileExists(atPath: d + "/big"))
        try w.commit()
        #expect(try LocalFS.readFile(d + "/big")?.count == 3_000_000)
        let aborted = try AtomicWriter(path: d + "/gone", durability: .full)
        try aborted.write(chunk)
        aborted.abort()
        #expect(entries(d) == ["big"])
    }

    @Test func linkIfAbsentNeverReplaces() throws {
        let d = tempDir()
        let first = try AtomicWriter(path: d + "/m", durability: .full)
        try first.write(Array("first".utf8))
        #expect(try first.commitIfAbsent())
        let second = try AtomicWriter(path: d + "/m", durability: .full)
        try second.write(Array("second".utf8))
        #expect(try second.commitIfAbsent() == false)
        #expect(try LocalFS.readFile(d + "/m") == Array("first".utf8))
        #expect(entries(d) == ["m"])
    }

    @Test func symbolicLinksAreNeverFollowed() throws {
        let d = tempDir()
        try LocalFS.writeFile(d + "/victim", Array("keep".utf8), durability: .none)
        for name in ["lnk-read", "lnk-lock", "lnk-log"] { symlink(d + "/victim", d + "/" + name) }
        #expect(throws: LocalFSError.self) { _ = try LocalFS.readFile(d + "/lnk-read") }
        #expect(try LocalFS.readFile(d + "/lnk-read", followSymlinks: true) == Array("keep".utf8))
        #expect(throws: LocalFSError.self) { _ = try LocalFS.openLock(d + "/lnk-lock") }
        #expect(throws: LocalFSError.self) { try LocalFS.append(d + "/lnk-log", Array("x".utf8), durability: .none) }
        #expect(throws: LocalFSError.self) { try LocalFS.makeFilePrivate(d + "/lnk-read", create: true) }
        #expect(!LocalFS.isLockHeld(d + "/lnk-lock"))
        // An atomic write over a link replaces the link, never writes through it.
        try LocalFS.writeFile(d + "/lnk-read", Array("new".utf8), durability: .none)
        #expect(try LocalFS.readFile(d + "/victim") == Array("keep".utf8))
        // A FIFO where a log is expected is refused (no hang, no write).
        mkfifo(d + "/fifo", 0o600)
        #expect(throws: LocalFSError.self) { _ = try LocalFS.openLock(d + "/fifo") }
        #expect(try LocalFS.readFile(d + "/missing") == nil)
    }

    @Test func appendCreatesPrivateAndAppends() throws {
        let d = tempDir()
        try LocalFS.append(d + "/log", Array("a\n".utf8), durability: .none)
        try LocalFS.append(d + "/log", Array("b\n".utf8), durability: .data)
        #expect(try LocalFS.readFile(d + "/log") == Array("a\nb\n".utf8))
        #expect(mode(d + "/log") == 0o600)
    }

    @Test func privateDirectoriesAreCheckedByOwnerAndMode() throws {
        let d = tempDir()
        try LocalFS.makePrivateDirectory(d + "/x/y/z")
        #expect(mode(d + "/x") == 0o700 && mode(d + "/x/y/z") == 0o700)
        try LocalFS.makePrivateDirectory(d + "/x/y/z")  // exists, fine
        mkdir(d + "/open", 0o700); chmod(d + "/open", 0o777)
        do {
            try LocalFS.makePrivateDirectory(d + "/open")
            Issue.record("a world-writable directory was accepted")
        } catch {
            #expect(error.description.contains(d + "/open") && error.description.contains("chmod go-w"))
        }
        // Guarded parents: one another user could rename things in is refused (here: group-writable,
        // not sticky); /tmp (sticky) above the test directory is accepted.
        mkdir(d + "/shared", 0o700); chmod(d + "/shared", 0o770)
        #expect(throws: LocalFSError.self) { try LocalFS.makePrivateDirectory(d + "/shared/spool", existingParents: .guarded) }
        try LocalFS.makePrivateDirectory(d + "/x/spool", existingParents: .guarded)
                symlink(d + "/x", d + "/link")
        #expect(throws: LocalFSError.self) { try LocalFS.makePrivateDirectory(d + "/link") }
        #expect(throws: LocalFSError.self) { try LocalFS.requireDirectory(d + "/nope", what: "catalog directory") }
        try LocalFS.requireDirectory(d + "/x", what: "catalog directory")
    }

    @Test func pathHelpers() {
        #expect(LocalFS.directory(of: "/a/b/c") == "/a/b")
        #expect(LocalFS.directory(of: "/c") == "/")
        #expect(LocalFS.directory(of: "c") == ".")
        #expect(LocalFS.baseName(of: "/a/b/c") == "c")
        #expect(LocalFS.baseName(of: "c") == "c")
    }

    /// A killed archive-get's temporary file is removed once its writer is gone and it is quiet;
    /// nothing else is touched: a live writer's, a recent one's, another name's, a link, odd names.
    @Test func abandonedTemporariesOfAGoneWriterAreRemovedAndNothingElse() throws {
        let d = tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        // A PID no process has (the highest ones are free on a test machine; checked, not assumed).
        let gone = try #require((4_000_000...4_194_303).reversed().lazy.map { Int32($0) }.first { kill($0, 0) != 0 && errno == ESRCH })
        let me = getpid()
        let hex = "0123456789abcdef"
        let old = d + "/.RECOVERYXLOG.tmp.\(gone).\(hex)"
        let recent = d + "/.RECOVERYXLOG.tmp.\(gone).fedcba9876543210"
        let live = d + "/.RECOVERYXLOG.tmp.1.\(hex)"            // PID 1 always runs
        let mine = d + "/.RECOVERYXLOG.tmp.\(me).\(hex)"
        let other = d + "/.RECOVERYHISTORY.tmp.\(gone).\(hex)"
        let short = d + "/.RECOVERYXLOG.tmp.\(gone).0123"
        let upper = d + "/.RECOVERYXLOG.tmp.\(gone).0123456789ABCDEF"
        let link = d + "/.RECOVERYXLOG.tmp.\(gone).aaaaaaaaaaaaaaaa"
        let zeros = d + "/.RECOVERYXLOG.tmp.0\(gone).\(hex)"
        let hard = d + "/.RECOVERYXLOG.tmp.\(gone).bbbbbbbbbbbbbbbb"   // a second name of `target`
        let target = d + "/RECOVERYXLOG"
        for p in [old, recent, live, mine, other, short, upper, zeros, target] {
            try LocalFS.writeFile(p, Array("x".utf8), durability: .none)
        }
        #expect(symlink(target, link) == 0)
        #expect(Glibc.link(target, hard) == 0)
        for p in [old, live, mine, other, short, upper, zeros, target] {
            var times = [timespec(tv_sec: time(nil) - 60, tv_nsec: 0), timespec(tv_sec: time(nil) - 60, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, p, &times, 0) == 0)
        }
        let removed = LocalFS.removeAbandonedTemporaries(of: d + "/RECOVERYXLOG")
        #expect(removed == [old])
        #expect(entries(d) == [".RECOVERYHISTORY.tmp.\(gone).\(hex)", ".RECOVERYXLOG.tmp.1.\(hex)", ".RECOVERYXLOG.tmp.\(gone).0123",
                               ".RECOVERYXLOG.tmp.\(gone).0123456789ABCDEF", ".RECOVERYXLOG.tmp.\(gone).aaaaaaaaaaaaaaaa",
                               ".RECOVERYXLOG.tmp.\(gone).fedcba9876543210", ".RECOVERYXLOG.tmp.\(me).\(hex)", "RECOVERYXLOG",
                               ".RECOVERYXLOG.tmp.0\(gone).\(hex)", ".RECOVERYXLOG.tmp.\(gone).bbbbbbbbbbbbbbbb"].sorted())
        // Quiet long enough, the recent one goes too; a missing directory is no error.
        #expect(LocalFS.removeAbandonedTemporaries(of: d + "/RECOVERYXLOG", quietSeconds: 0) == [recent])
        #expect(LocalFS.removeAbandonedTemporaries(of: d + "/missing/RECOVERYXLOG").isEmpty)
    }
}
