import Foundation
import Testing
import TestSupport
@testable import WALFormat

/// The reader against `pg_waldump` on real WAL made by PostgreSQL 15, 16 and 18, with 16 MiB and
/// 64 MiB segments.
///
/// **How pg_waldump is counted.** pg_waldump prints a record only once it has read it whole, so a record
/// that crosses into the next segment is printed only when that segment is at hand. The test therefore
/// runs one `pg_waldump -p <archive> -s <start of the first archived segment>` over the whole archive
/// (it stops with an error at the end of the archive, after the final XLOG_SWITCH), and assigns every
/// printed record to the segment that contains its start LSN (`lsn / segment size`): the same rule as
/// the reader's. The reader is then run per segment file twice:
/// - with the next archived segment as `following`: every field must equal pg_waldump's;
/// - alone (what archive-push sees): records, LSNs, restore points and the switch flag must equal, and
///   commits and commit times too unless the last record is incomplete (`lastRecordIncomplete`), in
///   which case it may lack that one record's commit or time.
/// Every record's block headers are also decoded (test hook) and must add up to its length, which
/// proves the block-reference skipping, including compressed full-page images (`wal_compression`).
@Suite("Reader vs pg_waldump on real WAL", .serialized)
struct WaldumpComparisonTests {
    @Test("PostgreSQL 15", .enabled(if: PostgresBinaries.shouldRun(major: 15)), arguments: [16, 64])
    func postgres15(segmentMB: Int) throws { try compare(major: 15, segmentMB: segmentMB) }

    @Test("PostgreSQL 16", .enabled(if: PostgresBinaries.shouldRun(major: 16)), arguments: [16, 64])
    func postgres16(segmentMB: Int) throws { try compare(major: 16, segmentMB: segmentMB) }

    @Test("PostgreSQL 18", .enabled(if: PostgresBinaries.shouldRun(major: 18)), arguments: [16, 64])
    func postgres18(segmentMB: Int) throws { try compare(major: 18, segmentMB: segmentMB) }

    /// One line of pg_waldump output.
    struct DumpRecord {
        var lsn: LSN
        var rmgr: String
        var desc: String
        /// The `YYYY-MM-DD HH:MM:SS.ffffff UTC` timestamp in the description, if any.
        var time: PGTimestamp? {
            guard let r = desc.range(of: " UTC") else { return nil }
            let start = desc.index(r.lowerBound, offsetBy: -26, limitedBy: desc.startIndex) ?? desc.startIndex
            return PGTimestamp(parsing: String(desc[start ..< r.upperBound]))
        }
        var isCommit: Bool { rmgr == "Transaction" && (desc.hasPrefix("COMMIT ") || desc.hasPrefix("COMMIT_PREPARED ")) }
        var isAbort: Bool { rmgr == "Transaction" && (desc.hasPrefix("ABORT ") || desc.hasPrefix("ABORT_PREPARED ")) }
        var restorePoint: String? {
            rmgr == "XLOG" && desc.hasPrefix("RESTORE_POINT ") ? String(desc.dropFirst("RESTORE_POINT ".count)) : nil
        }
        var isSwitch: Bool { rmgr == "XLOG" && desc.hasPrefix("SWITCH") }
        /// A checkpoint's `redo X/X`.
        var redo: LSN? {
            guard checkpoint != nil, let r = desc.range(of: "redo ") else { return nil }
            return LSN(desc[r.upperBound...].prefix(while: { $0 != ";" }))
        }
        /// A checkpoint's `xid E:N` (next transaction id, with its epoch).
        var nextXid: UInt64? {
            guard checkpoint != nil, let r = desc.range(of: "; xid ") else { return nil }
            let parts = desc[r.upperBound...].prefix(while: { $0 != ";" }).split(separator: ":")
            guard parts.count == 2, let e = UInt64(parts[0]), let n = UInt64(parts[1]) else { return nil }
            return e << 32 | n
        }
        /// A checkpoint's `oldest running xid N` (nil when 0: not recorded).
        var oldestActiveXid: UInt32? {
            guard checkpoint != nil, let r = desc.range(of: "oldest running xid ") else { return nil }
            let v = UInt32(desc[r.upperBound...].prefix(while: { $0.isNumber }))
            return v == 0 ? nil : v
        }
        var checkpoint: Bool? {
            guard rmgr == "XLOG" else { return nil }
            if desc.hasPrefix("CHECKPOINT_SHUTDOWN") { return true }
            if desc.hasPrefix("CHECKPOINT_ONLINE") { return false }
            return nil
        }

        /// Parses `rmgr: Transaction len (rec/tot): 34/34, tx: 725, lsn: 0/0301E628, prev 0/0301E5E8, desc: COMMIT ...`.
        init?(line: Substring) {
            guard line.hasPrefix("rmgr: "), let l = line.range(of: "lsn: "), let d = line.range(of: ", desc: ") else { return nil }
            rmgr = String(line.dropFirst(6).prefix(while: { $0 != " " }))
            let lsnText = line[l.upperBound...].prefix(while: { $0 != "," })
            guard let v = LSN(lsnText) else { return nil }
            lsn = v
            desc = String(line[d.upperBound...])
        }
    }

    func compare(major: Int, segmentMB: Int) throws {
        try #require(PostgresBinaries.isInstalled(major: major), Comment(rawValue: PostgresBinaries.missingMessage(major: major)))
        let segSize = try #require(WALSegmentSize(bytes: UInt64(segmentMB) << 20))
        let pg = try PostgresCluster(binDirectory: PostgresBinaries.binDirectory(major: major),
                                     initdbOptions: ["--wal-segsize=\(segmentMB)"])
        defer { pg.cleanup() }
        #expect(pg.serverMajorVersion == major)
        let archive = try pg.makeDirectory("archive")
        try pg.start(settings: [
            "archive_mode": "on", "archive_command": "cp %p \(archive)/%f", "max_prepared_transactions": "5",
            "wal_compression": segmentMB == 64 ? "on" : "off", "max_wal_size": "4GB", "checkpoint_timeout": "1h",
        ])

        // Load: pgbench -i fills several segments (records cross page and segment boundaries), a
        // checkpoint makes the following updates write full-page images, then a short pgbench run.
        let scale = segmentMB == 64 ? "6" : "2"
        let initRun = try pg.runTool("pgbench", ["-i", "-q", "-s", scale, "postgres"])
        #expect(initRun.succeeded, "\(ProcessFailure(result: initRun))")
        try pg.psql("CHECKPOINT")
        let bench = try pg.runTool("pgbench", ["-n", "-c", "2", "-j", "1", "-t", "250", "postgres"])
        #expect(bench.succeeded, "\(ProcessFailure(result: bench))")

        let before = try #require(PGTimestamp(parsing: try pg.psql("SELECT clock_timestamp()")))
        try pg.psql("""
            CREATE TABLE known(id int);
            BEGIN; INSERT INTO known VALUES (1); COMMIT;
            BEGIN; INSERT INTO known VALUES (2); ROLLBACK;
            BEGIN; INSERT INTO known VALUES (3); PREPARE TRANSACTION 'p_commit'; COMMIT PREPARED 'p_commit';
            BEGIN; INSERT INTO known VALUES (4); PREPARE TRANSACTION 'p_abort'; ROLLBACK PREPARED 'p_abort';
            SELECT pg_create_restore_point('rp_one');
            CHECKPOINT;
            """)
        let after = try #require(PGTimestamp(parsing: try pg.psql("SELECT clock_timestamp()")))
        let lastSegment = try pg.psql("SELECT pg_walfile_name(pg_switch_wal())")

        // Wait until the switched segment is archived.
        let deadline = Date().addingTimeInterval(120)
        while try pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") != lastSegment {
            try #require(Date() < deadline, "segment \(lastSegment) was not archived within 120 s")
            usleep(100_000)
        }
        try pg.stop()

        let names = try FileManager.default.contentsOfDirectory(atPath: archive)
            .filter { $0.count == 24 && $0.allSatisfy(\.isHexDigit) }.sorted()
        try #require(names.count >= 2 && names.last == lastSegment, "archive holds \(names)")
        let ids = try names.map { try #require(SegmentID(fileName: $0, size: segSize)) }

        // One pg_waldump over the whole archive.
        let startLSN = LSN.start(of: ids[0].segno, size: segSize)
        let dump = try pg.runTool("pg_waldump", ["-p", archive, "-t", "1", "-s", startLSN.description])
        let records = dump.stdout.split(separator: "\n").compactMap(DumpRecord.init(line:))
        try #require(records.count > 1000, "pg_waldump printed \(records.count) records; stderr: \(dump.stderr)")
        #expect(records.last?.isSwitch == true, "pg_waldump did not reach the final switch: \(dump.stderr)")
        var bySegment: [XLogSegNo: [DumpRecord]] = [:]
        for r in records { bySegment[r.lsn.segment(size: segSize), default: []].append(r) }

        var startsInside = 0, incompleteAlone = 0, totalRecords = 0, bodies = 0
        var restorePoints: [RestorePoint] = []
        var checkpointsWithXids = 0
        for (i, name) in names.enumerated() {
            let data = try Data(contentsOf: URL(fileURLWithPath: archive + "/" + name))
            let nextData: Data? = i + 1 < ids.count && ids[i + 1].segno == ids[i].segno + 1
                ? try Data(contentsOf: URL(fileURLWithPath: archive + "/" + names[i + 1])) : nil
            let expected = bySegment[ids[i].segno] ?? []
            let (full, alone, checked) = try data.withUnsafeBytes { seg in
                let alone = try SegmentSummary.scan(seg, segmentSize: segSize)
                let pair: (SegmentSummary, (summary: SegmentSummary, bodiesChecked: Int, undecodable: [LSN]))
                if let n = nextData {
                    pair = try n.withUnsafeBytes { next in
                        (try SegmentSummary.scan(seg, segmentSize: segSize, following: next),
                         try SegmentSummary.scanCheckingBodies(seg, segmentSize: segSize, following: next))
                    }
                } else {
                    pair = (try SegmentSummary.scan(seg, segmentSize: segSize),
                            try SegmentSummary.scanCheckingBodies(seg, segmentSize: segSize))
                }
                return (pair.0, alone, pair.1)
            }
            let ctx = Comment(rawValue: "PostgreSQL \(major), \(segmentMB) MiB, segment \(name)")
            let commits = expected.filter(\.isCommit), aborts = expected.filter(\.isAbort)
            let xacts = expected.filter { $0.isCommit || $0.isAbort }

            // With the next segment: everything equals pg_waldump.
            #expect(full.pgMajorVersion == major, ctx)
            #expect(full.records == expected.count, ctx)
            #expect(full.commits == commits.count && full.aborts == aborts.count, ctx)
            #expect(full.firstCommitTime == commits.first?.time && full.lastCommitTime == commits.last?.time, ctx)
            #expect(full.firstXactTime == xacts.first?.time && full.lastXactTime == xacts.last?.time, ctx)
            #expect(full.earliestXactTime == xacts.compactMap(\.time).min(), ctx)
            #expect(full.latestXactTime == xacts.compactMap(\.time).max(), ctx)
            #expect(full.restorePoints.map(\.name) == expected.compactMap(\.restorePoint), ctx)
            #expect(full.restorePoints.map(\.lsn) == expected.filter { $0.restorePoint != nil }.map(\.lsn), ctx)
            #expect(full.checkpoints.map(\.lsn) == expected.filter { $0.checkpoint != nil }.map(\.lsn), ctx)
            #expect(full.checkpoints.map(\.shutdown) == expected.compactMap(\.checkpoint), ctx)
            #expect(full.checkpoints.map(\.redo) == expected.filter { $0.checkpoint != nil }.map(\.redo), ctx)
            #expect(full.checkpoints.map(\.nextXid) == expected.filter { $0.checkpoint != nil }.map(\.nextXid), ctx)
            #expect(full.checkpoints.map(\.oldestActiveXid) == expected.filter { $0.checkpoint != nil }.map(\.oldestActiveXid), ctx)
            #expect(full.endsWithSwitch == (expected.last?.isSwitch ?? false), ctx)
            #expect(full.firstLSN == expected.first?.lsn && full.lastLSN == expected.last?.lsn, ctx)
            #expect(full.crcFailures == 0 && full.endOfWAL == nil, ctx)
            #expect(full.lastRecordIncomplete == nil || nextData == nil, ctx)
            #expect(checked.undecodable.isEmpty, "\(ctx): block headers do not add up at \(checked.undecodable.prefix(5))")
            #expect(checked.bodiesChecked == full.records - (full.lastRecordIncomplete == true ? 1 : 0), ctx)

            // Alone, as archive-push sees it.
            #expect(alone.records == expected.count && alone.crcFailures == 0, ctx)
            #expect(alone.firstLSN == full.firstLSN && alone.lastLSN == full.lastLSN, ctx)
            #expect(alone.restorePoints == full.restorePoints && alone.endsWithSwitch == full.endsWithSwitch, ctx)
            #expect(alone.continuesIntoNext == full.continuesIntoNext, ctx)
            if alone.lastRecordIncomplete == true {
                incompleteAlone += 1
                #expect(alone.commits + alone.aborts >= full.commits + full.aborts - 1, ctx)
                #expect(alone.firstCommitTime == full.firstCommitTime || full.commits == 1, ctx)
            } else {
                #expect(alone.commits == full.commits && alone.aborts == full.aborts, ctx)
                #expect(alone.firstCommitTime == full.firstCommitTime && alone.lastCommitTime == full.lastCommitTime, ctx)
                #expect(alone.checkpoints == full.checkpoints, ctx)
            }
            if full.startsInsideRecord == true { startsInside += 1 }
            totalRecords += full.records
            bodies += checked.bodiesChecked
            restorePoints += full.restorePoints
            checkpointsWithXids += full.checkpoints.filter { $0.redo != nil && $0.nextXid != nil && $0.oldestActiveXid != nil }.count
        }

        // The run as a whole.
        #expect(totalRecords == records.filter { ids.map(\.segno).contains($0.lsn.segment(size: segSize)) }.count)
        #expect(startsInside >= 1, "no archived segment started inside a record: the load was too small")
        #expect(checkpointsWithXids >= 1, "no online checkpoint with transaction ids was archived")
        let rp = try #require(restorePoints.first { $0.name == "rp_one" }, "rp_one not found")
        #expect(rp.time >= before && rp.time <= after, "restore point time \(rp.time) outside [\(before), \(after)]")
        print("walctl-compare pg\(major) \(segmentMB)MiB: \(names.count) segments, \(totalRecords) records, " +
              "\(bodies) bodies decoded, \(startsInside) starting inside a record, \(incompleteAlone) ending incomplete alone")
    }
}
