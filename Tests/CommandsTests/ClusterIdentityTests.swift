import Foundation
import Testing
import WALFormat
@testable import Commands

/// `ClusterIdentity.read` on a data directory: the WAL segment size comes from the newest segment
/// whose first page was written; segments created ahead and still zero-filled (PostgreSQL 18 makes
/// them on an idle running cluster) are passed over instead of refused.
@Suite struct ClusterIdentityTests {
    let sysid: UInt64 = 7_714_037_088_925_766_488

    func dataDirectory(segments: [(String, [UInt8])]) throws -> String {
        let dir = NSTemporaryDirectory() + "walctl-identity-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/global", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/pg_wal", withIntermediateDirectories: true)
        try Data("18\n".utf8).write(to: URL(fileURLWithPath: dir + "/PG_VERSION"))
        var control = [UInt8](repeating: 0, count: 8192)
        withUnsafeBytes(of: sysid.littleEndian) { control.replaceSubrange(0..<8, with: $0) }
        try Data(control).write(to: URL(fileURLWithPath: dir + "/global/pg_control"))
        for (name, bytes) in segments { try Data(bytes).write(to: URL(fileURLWithPath: dir + "/pg_wal/" + name)) }
        return dir
    }

    /// The long page header of a segment's first page (PostgreSQL 18's magic, 16 MiB segments).
    func firstPage(segmentBytes: UInt32 = 16 << 20) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 8192)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { b.replaceSubrange(at..<(at + $0.count), with: $0) } }
        put(UInt16(0xD118), 0); put(UInt16(0x0002), 2); put(UInt32(1), 4); put(UInt64(0x100_0000), 8)
        put(sysid, 24); put(segmentBytes, 32); put(UInt32(8192), 36)
        return b
    }

    @Test func zeroFilledSegmentsAheadArePassedOver() throws {
        let dir = try dataDirectory(segments: [("000000010000000000000001", firstPage()),
                                               ("000000010000000000000002", [UInt8](repeating: 0, count: 8192))])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let id = try ClusterIdentity.read(pgdata: dir)
        #expect(id.systemIdentifier == sysid)
        #expect(id.segmentSize.bytes == 16 << 20)
        #expect(id.pgVersion == 18)
    }

    @Test func aWrittenButWrongSegmentIsStillRefused() throws {
        let dir = try dataDirectory(segments: [("000000010000000000000001", firstPage(segmentBytes: 12345))])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: WalctlError.self) { try ClusterIdentity.read(pgdata: dir) }
    }
}
