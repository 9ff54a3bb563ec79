import Foundation
import Storage
import Testing
import WALFormat
@testable import Catalog

let seg16 = WALSegmentSize.default
/// 2026-01-01 00:00:00 UTC.
let base = PGTimestamp(unixSeconds: 1_767_225_600)

func at(_ seconds: Int64) -> PGTimestamp { PGTimestamp(microseconds: base.microseconds + seconds * 1_000_000) }

func segName(_ tl: TimeLineID, _ segno: XLogSegNo) -> String { SegmentID(timeline: tl, segno: segno).fileName(size: seg16) }

/// A segment meta whose commits run from `first` to `last` seconds after `base`.
func segmentMeta(_ tl: TimeLineID, _ segno: XLogSegNo, first: Int64?, last: Int64?, archived: Int64? = nil,
                 restorePoints: [(String, Int64)] = [], partial: Bool = false) -> ArchivedFileMeta {
    var s = SegmentSummary()
    if let first, let last {
        s.commits = 10; s.aborts = 1
        s.firstCommitTime = at(first); s.lastCommitTime = at(last)
        s.firstXactTime = at(first); s.lastXactTime = at(last)
    }
    let start = LSN.start(of: segno, size: seg16)
    s.firstLSN = start + 40; s.lastLSN = start + 1000
    s.restorePoints = restorePoints.enumerated().map { i, rp in RestorePoint(name: rp.0, time: at(rp.1), lsn: start + UInt64(2000 + i * 100)) }
    return ArchivedFileMeta(name: segName(tl, segno) + (partial ? ".partial" : ""), size: Int64(seg16.bytes),
                            storedSize: 1_000_000 + Int64(segno), codec: "zstd", crc32c: UInt32(truncatingIfNeeded: segno &* 2654435761),
                            archivedAt: at(archived ?? (last ?? 0) + 1), summary: s)
}

func fileMeta(_ name: String, archived: Int64 = 0) -> ArchivedFileMeta {
    ArchivedFileMeta(name: name, size: 40, storedSize: 50, codec: "none", crc32c: 0xdeadbeef, archivedAt: at(archived), summary: nil)
}

func tempDir() -> String {
    let d = NSTemporaryDirectory() + "walctl-cat-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// The switch from timeline 1 to 2: in the middle of segment 10.
let switch12 = LSN.start(of: 10, size: seg16) + 0x100
let history2 = TimelineHistory(timeline: 2, entries: [.init(timeline: 1, switchPoint: switch12, reason: "before 2026-01-01 00:16:40+00")])
/// Timeline 3 forks from timeline 1 at the start of segment 14 (a sibling of 2).
let switch13 = LSN.start(of: 14, size: seg16)
let history3 = TimelineHistory(timeline: 3, entries: [.init(timeline: 1, switchPoint: switch13, reason: "no recovery target specified")])

func backup(_ label: String, tl: TimeLineID, startSeg: XLogSegNo, stopSeg: XLogSegNo, stop: Int64,
            status: BackupStatus = .complete) -> BackupRecord {
    BackupRecord(label: label, startLSN: LSN.start(of: startSeg, size: seg16) + 0x28,
                 stopLSN: LSN.start(of: stopSeg, size: seg16) + 0x100, startTime: at(stop - 30), stopTime: at(stop),
                 timeline: tl, size: 1 << 30, status: status, pgVersion: 150020, systemIdentifier: "7441234567890123456")
}

/// The standard synthetic archive:
/// - timeline 1: segments 1...20, segment k commits from 100k to 100k+50 s, except a gap at 5...6;
///   segment 7 ends at 850 s and segment 8 at 795 s (commit timestamps are not in LSN order);
///   segment 3 holds restore point "before-migration".
/// - timeline 2 (history: forks from 1 inside segment 10): segments 10...15 with commits from
///   5000 + 100k s; gap at 12.
/// - timeline 3 (forks from 1 at the start of segment 14): segments 14...16, commits 9000 + 100k.
/// - backups: b1 on tl1 (segments 2-2, stop 260), b2 on tl1 (7-7, stop 760), b3 on tl1 after the
///   fork (16-16, stop 1660: not on tl2's path), b4 on tl2 (13-13, stop 6350), a failed one.
func standardMetas() -> [ArchivedFileMeta] {
    var metas: [ArchivedFileMeta] = []
    for k: UInt64 in 1...20 where k != 5 && k != 6 {
        let t = Int64(k) * 100
        if k == 7 {
            metas.append(segmentMeta(1, k, first: 700, last: 850))   // a late commit timestamp ...
        } else if k == 8 {
            metas.append(segmentMeta(1, k, first: 790, last: 795))   // ... so segment 8's last is below 7's
        } else {
            metas.append(segmentMeta(1, k, first: t, last: t + 50, restorePoints: k == 3 ? [("before-migration", 320)] : []))
        }
    }
    for k: UInt64 in 10...15 where k != 12 {
        let t = 5000 + Int64(k) * 100
        metas.append(segmentMeta(2, k, first: t, last: t + 50, restorePoints: k == 14 ? [("before-migration", t + 10)] : []))
    }
    for k: UInt64 in 14...16 {
        let t = 9000 + Int64(k) * 100
        metas.append(segmentMeta(3, k, first: t, last: t + 50))
    }
    metas.append(fileMeta("00000002.history"))
    metas.append(fileMeta("00000003.history"))
    metas.append(fileMeta(segName(1, 2) + ".00000028.backup"))
    metas.append(segmentMeta(1, 10, first: 1000, last: 1010, partial: true))
    return metas
}

let standardBackups = [
    backup("b1", tl: 1, startSeg: 2, stopSeg: 2, stop: 260),
    backup("b2", tl: 1, startSeg: 7, stopSeg: 7, stop: 760),
    backup("b3", tl: 1, startSeg: 16, stopSeg: 16, stop: 1660),
    backup("b4", tl: 2, startSeg: 13, stopSeg: 13, stop: 6350),
    backup("bad", tl: 1, startSeg: 4, stopSeg: 4, stop: 460, status: .failed),
]

func standardCatalog(_ dir: String, shuffled: Bool = false) throws -> Catalog {
    let c = try Catalog(path: dir + "/catalog.db", repositoryURL: "file://" + dir + "/repo", segmentSize: seg16)
    var metas = standardMetas()
    if shuffled { metas.shuffle() }
    for m in metas { try c.recordArchived(m) }
    try c.recordHistory(history2)
    try c.recordHistory(history3)
    for b in standardBackups { try c.recordBackup(b) }
    return c
}
