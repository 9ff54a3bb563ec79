import XCTest
import Foundation
import FastPath

/// The spool directory lock (issue 19): shared holders keep the directory from being removed; the
/// remover's exclusive lock waits for them; a lock on a directory that was removed (or removed and
/// made again) in the meantime is never handed out.
final class SpoolDirectoryLockTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "walctl-dirlock-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    func testSharedHoldersExcludeTheRemoverUntilTheyRelease() throws {
        let dir = tmp + "/walctl_prefetch"
        XCTAssertNil(SpoolDirectoryLock.shared(dir, create: false), "absent and not created")
        let a = try XCTUnwrap(SpoolDirectoryLock.shared(dir, create: true))
        let b = try XCTUnwrap(SpoolDirectoryLock.shared(dir, create: false), "shared locks coexist")
        let start = Date()
        XCTAssertNil(SpoolDirectoryLock.exclusive(dir, seconds: 0.2), "a remover must wait for the foregrounds")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.19)
        a.release(); b.release()
        let x = try XCTUnwrap(SpoolDirectoryLock.exclusive(dir, seconds: 0.2))
        XCTAssertNil(SpoolDirectoryLock.shared(dir, create: false, seconds: 0.1), "no foreground while the remover holds it")
        x.release()
    }

    func testTheRemoverWaitsForAForegroundThatFinishes() throws {
        let dir = tmp + "/walctl_prefetch"
        let fg = try XCTUnwrap(SpoolDirectoryLock.shared(dir, create: true))
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { fg.release() }
        let x = SpoolDirectoryLock.exclusive(dir, seconds: 5)
        XCTAssertNotNil(x)
    }

    func testALockOnARemovedDirectoryIsNotHandedOutAndCreateMakesItAgain() throws {
        let dir = tmp + "/walctl_prefetch"
        // The remover holds the lock, removes the directory, and releases: a foreground that was
        // waiting gets nothing (create: false) or a lock on the new directory (create: true).
        let x = try XCTUnwrap(SpoolDirectoryLock.shared(dir, create: true).map { $0.release(); return SpoolDirectoryLock.exclusive(dir)! })
        let waiter = DispatchSemaphore(value: 0)
        var late: SpoolDirectoryLock?
        var lateCreate: SpoolDirectoryLock?
        DispatchQueue.global().async {
            late = SpoolDirectoryLock.shared(dir, create: false, seconds: 2)
            waiter.signal()
        }
        usleep(100_000)
        XCTAssertEqual(rmdir(dir), 0)
        x.release()
        waiter.wait()
        XCTAssertNil(late, "a lock on the removed directory")
        DispatchQueue.global().sync { lateCreate = SpoolDirectoryLock.shared(dir, create: true) }
        XCTAssertNotNil(lateCreate)
        var st = stat()
        XCTAssertEqual(stat(dir, &st), 0, "made again")
    }
}
