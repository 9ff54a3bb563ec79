import Foundation
import Testing
import TestSupport
@testable import WALFormat

/// Issue 12: the one rule for damaged WAL (`SegmentSummary.damage(for:)`), the scanner's handling of
/// an overwritten continuation record, and the validation of history and backup history files.
private let oneMiB = WALSegmentSize(bytes: 1 << 20)!
private let t0 = PGTimestamp(microseconds: 848_980_022_115_455)
private let seg1 = WALFileName.segment("000000010000000000000001")
private let partial1 = WALFileName.partial("000000010000000000000001")

private func scan(_ bytes: [UInt8], following: [UInt8]? = nil) throws -> SegmentSummary {
    try bytes.withUnsafeBytes { seg in
        if let f = following { return try f.withUnsafeBytes { try SegmentSummary.scan(seg, segmentSize: oneMiB, following: $0) } }
        return try SegmentSummary.scan(seg, segmentSize: oneMiB)
    }
}

@Suite("Damaged WAL")
struct DamageTests {
    @Test func soundSegmentsAreNotDamaged() throws {
        // Ends with a switch (the zeroed rest is not read).
        var wal = SyntheticWAL(segmentSize: oneMiB)
        wal.appendCommit(time: t0)
        wal.appendFiller(size: 20_000)
        wal.appendSwitch()
        #expect(try scan(wal.segment(0)).damage(for: seg1) == nil)
        // Ends inside a record continued in the next segment.
        var two = SyntheticWAL(segmentSize: oneMiB, segments: 2)
        while two.position < (1 << 20) - 10_000 { two.appendFiller(size: 700) }
        two.appendFiller(size: 40_000)
        two.appendSwitch()
        let s = try scan(two.segment(0))
        #expect(s.continuesIntoNext && s.damage(for: seg1) == nil)
        #expect(try scan(two.segment(1)).damage(for: .segment("000000010000000000000002")) == nil)
    }

    @Test func crcFailureIsDamageAtTheRecord() throws {
        var wal = SyntheticWAL(segmentSize: oneMiB)
        wal.appendCommit(time: t0)
        let victim = wal.appendFiller(size: 12_000)
        wal.appendCommit(time: t0)
        wal.appendSwitch()
        var bytes = wal.segment(0)
        bytes[wal.offset(of: victim) + 9000] ^= 0x01
        let s = try scan(bytes)
        let d = try #require(s.damage(for: seg1))
        #expect(d.lsn == victim && d.reason.contains("CRC-32C") && d.reason.contains(victim.description))
        #expect(s.damage(for: partial1) == nil)   // only complete segments are judged
    }

    @Test func validWALStoppingInsideACompleteSegmentIsDamage() throws {
        // A zeroed tail without a switch: normal for a .partial file, damage for a complete segment.
        var wal = SyntheticWAL(segmentSize: oneMiB)
        wal.appendCommit(time: t0)
        wal.appendFiller(size: 9000)
        let s = try scan(wal.segment(0))
        let end = try #require(s.endOfWAL)
        #expect(s.damage(for: seg1)?.lsn == end)
        #expect(s.damage(for: partial1) == nil)
        // A valid first page followed by random bytes.
        var full = SyntheticWAL(segmentSize: oneMiB)
        while full.position < (1 << 20) - 2000 { full.appendFiller(size: 900) }
        var bytes = full.segment(0)
        var rng = SystemRandomNumberGenerator()
        for i in 8192 ..< bytes.count { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let r = try scan(bytes)
        let d = try #require(r.damage(for: seg1))
        #expect(d.lsn.value < full.startLSN + 8192 + 8192, "\(d)")
        #expect(d.reason.contains("valid WAL stops"))
        // The LSN is the earlier of a CRC failure and the end of valid WAL.
        var both = full.segment(0)
        both[200] ^= 0x40   // inside the first record's data
        for i in 3 * 8192 ..< 4 * 8192 { both[i] = 0 }
        let b = try scan(both)
        #expect(b.crcFailures >= 1 && b.endOfWAL != nil)
        #expect(b.damage(for: seg1)?.lsn == b.crcFailureLSNs.first)
    }

    @Test func historyAndBackupFilesCarryNoWAL() {
        var s = SegmentSummary()
        s.crcFailures = 1
        #expect(s.damage(for: .history(2)) == nil)
        #expect(s.damage(for: .backupHistory(segment: "000000010000000000000001", offset: 0x28)) == nil)
    }

    /// PostgreSQL 15+ (and back-branch minors): after a crash that cut a record crossing a page
    /// boundary, the next page carries XLP_FIRST_IS_OVERWRITE_CONTRECORD without XLP_FIRST_IS_CONTRECORD
    /// and begins with an XLOG_OVERWRITE_CONTRECORD record whose xl_prev is the record before the
    /// abandoned one. PostgreSQL reads on from that page: this is sound WAL, not damage.
    @Test func overwrittenContinuationIsNotDamage() throws {
        var wal = SyntheticWAL(segmentSize: oneMiB)
        let a = wal.appendCommit(time: t0)
        while wal.position < 2 * 8192 - 3000 { wal.appendFiller(size: 500, withImage: false) }
        let beforeAbandoned = wal.lastLSN
        let abandoned = wal.appendFiller(size: 6000, withImage: false)   // crosses into page 2
        #expect(abandoned.value < wal.startLSN + 2 * 8192 && wal.position > 2 * 8192)
        var bytes = wal.segment(0)
        // Page 2 rewritten after the crash: a short header with the overwrite flag, then new records.
        let p = 2 * 8192
        func put<T: FixedWidthInteger>(_ v: T, at off: Int) {
            withUnsafeBytes(of: v.littleEndian) { bytes.replaceSubrange(off ..< off + MemoryLayout<T>.size, with: $0) }
        }
        put(wal.magic, at: p)
        put(UInt16(0x0004 | WALPage.firstIsOverwriteContRecord), at: p + 2)
        put(wal.timeline, at: p + 4)
        put(wal.startLSN + UInt64(p), at: p + 8)
        put(UInt32(0), at: p + 16)
        put(UInt32(0), at: p + 20)
        let overwriteLSN = wal.startLSN + UInt64(p + 24)
        var main: [UInt8] = []
        withUnsafeBytes(of: abandoned.value.littleEndian) { main += $0 }
        withUnsafeBytes(of: t0.microseconds.littleEndian) { main += $0 }
        let ow = SyntheticWAL.encodeRecord(rmid: 0, info: 0xD0, previous: beforeAbandoned, mainData: main)
        bytes.replaceSubrange(p + 24 ..< p + 24 + ow.count, with: ow)
        let next = (p + 24 + ow.count + 7) & ~7
        let sw = SyntheticWAL.encodeRecord(rmid: 0, info: 0x40, previous: overwriteLSN, mainData: [])
        bytes.replaceSubrange(next ..< next + sw.count, with: sw)
        for i in (next + sw.count) ..< (p + 8192) { bytes[i] = 0 }

        let s = try scan(bytes)
        #expect(s.endOfWAL == nil, "\(s.endOfWALReason ?? "")")
        #expect(s.endsWithSwitch && s.crcFailures == 0 && s.lastLSN == LSN(wal.startLSN + UInt64(next)))
        #expect(s.damage(for: seg1) == nil)
        #expect(s.firstLSN == a)
        // Without the flag the same page is damage (the abandoned record is not continued).
        put(UInt16(0x0004), at: p + 2)
        #expect(try scan(bytes).damage(for: seg1)?.lsn == abandoned)
    }
}

@Suite("History and backup history files are checked before they are archived")
struct HistoryValidationTests {
    func history(_ tli: TimeLineID, _ text: String) throws(WALFormatError) -> TimelineHistory {
        let h = try TimelineHistory(timeline: tli, text: text)
        try h.validate()
        return h
    }

    @Test func validHistories() throws {
        #expect(try history(2, "1\t0/8018F38\tbefore 2026-11-26 03:48:18.888957+00\n").entries.count == 1)
        #expect(try history(5, "1\t0/3000000\tno recovery target specified\n\n3\t0/5000000\tx\n4\t0/5000100\ty\n").entries.count == 3)
    }

    @Test(arguments: [
        (TimeLineID(1), "1\t0/3000000\tx\n", "timeline 1"),
        (2, "", "empty"),
        (2, "# comment only\n\n", "ancestor"),
        (3, "1\t0/5000000\tx\n2\t0/3000000\ty\n", "switch points must increase"),
        (3, "1\t0/5000000\tx\n2\t0/5000000\ty\n", "switch points must increase"),
        (4, "2\t0/3000000\tx\n1\t0/5000000\ty\n", "timeline IDs must increase"),
        (2, "2\t0/3000000\tx\n", "not below"),
        (3, "1\t0/3000000\tx\n7\t0/5000000\ty\n", "not below"),
    ])
    func invalidHistoriesAreRefused(tli: TimeLineID, text: String, why: String) {
        do {
            _ = try history(tli, text)
            Issue.record("accepted: \(why)")
        } catch {
            #expect(error.description.contains(why), "\(error)")
        }
    }

    static let label = """
        START WAL LOCATION: 0/7000028 (file 000000010000000000000007)
        STOP WAL LOCATION: 0/7000100 (file 000000010000000000000007)
        CHECKPOINT LOCATION: 0/7000060
        BACKUP METHOD: streamed
        BACKUP FROM: primary
        START TIME: 2026-11-26 03:48:13 UTC
        LABEL: facts label
        START TIMELINE: 1
        STOP TIME: 2026-11-26 03:48:14 UTC
        STOP TIMELINE: 1

        """

    func check(_ text: String, _ segment: String, _ offset: UInt32, size: WALSegmentSize = .default) throws(WALFormatError) {
        try BackupLabel(text: text).validateBackupHistoryName(segment: segment, offset: offset, segmentSize: size)
    }

    @Test func backupHistoryMatchingItsName() throws {
        try check(Self.label, "000000010000000000000007", 0x28)
        // 64 MiB segments: 0/7000028 is in segment 1 at offset 0x3000028.
        let big = Self.label.replacingOccurrences(of: "(file 000000010000000000000007)", with: "(file 000000010000000000000001)")
        try check(big, "000000010000000000000001", 0x300_0028, size: WALSegmentSize(bytes: 64 << 20)!)
        // The name carries the timeline the backup ended on; the (file ...) the one it started on.
        let promoted = Self.label.replacingOccurrences(of: "STOP TIMELINE: 1", with: "STOP TIMELINE: 2")
        try check(promoted, "000000020000000000000007", 0x28)
    }

    @Test(arguments: [
        ("000000010000000000000007", UInt32(0x30), "offset"),
        ("000000010000000000000008", 0x28, "offset"),
        ("000000020000000000000007", 0x28, "timeline"),
    ])
    func backupHistoryDisagreeingWithItsNameIsRefused(segment: String, offset: UInt32, why: String) {
        do {
            try check(Self.label, segment, offset)
            Issue.record("accepted \(segment).\(offset)")
        } catch {
            #expect(error.description.contains("does not match its name") && error.description.contains(why), "\(error)")
        }
    }

    @Test func backupHistoryWithAnInconsistentFileOrStopIsRefused() {
        let wrongFile = Self.label.replacingOccurrences(of: "STOP WAL LOCATION: 0/7000100 (file 000000010000000000000007)", with: "")
            .replacingOccurrences(of: "(file 000000010000000000000007)", with: "(file 000000010000000000000009)")
        #expect(throws: WALFormatError.self) { try check(wrongFile, "000000010000000000000007", 0x28) }
        let stopBefore = Self.label.replacingOccurrences(of: "STOP WAL LOCATION: 0/7000100", with: "STOP WAL LOCATION: 0/6000000")
        #expect(throws: WALFormatError.self) { try check(stopBefore, "000000010000000000000007", 0x28) }
        #expect(throws: WALFormatError.self) { try check("LABEL: nothing\n", "000000010000000000000007", 0x28) }
    }
}
