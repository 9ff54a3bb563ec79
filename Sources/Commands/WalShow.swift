import Foundation
import WALFormat

/// `walctl wal show`: the summary of one segment file, read with the segment size from its own
/// long page header.
public enum WalShow {
    public static func summarize(path: String) throws -> (summary: SegmentSummary, header: LongPageHeader) {
        let file = try MappedFile(path: path)
        do {
            let header = try LongPageHeader(bytes: file.bytes)
            guard let size = WALSegmentSize(bytes: UInt64(header.segmentSize)) else {
                throw WALFormatError.invalidSegmentSize(UInt64(header.segmentSize))
            }
            return (try SegmentSummary.scan(file.bytes, segmentSize: size, verifyCRC: true), header)
        } catch let e as WALFormatError {
            throw WalctlError.invalidWAL(file: path, reason: e)
        }
    }

    /// `wal show --json` (docs/json.md): one object; an unknown time or LSN is absent.
    public struct Document: Encodable, Sendable {
        public var formatVersion = 1
        public var file: String
        public var pgVersion: Int?
        public var timeline: UInt32
        public var segmentSize: Int
        public var recordCount: Int
        public var commitCount: Int
        public var abortCount: Int
        public var hasCommits: Bool
        public var firstCommitTime: PGTimestamp?
        public var lastCommitTime: PGTimestamp?
        public var firstXactTime: PGTimestamp?
        public var lastXactTime: PGTimestamp?
        public var restorePoints: [RestorePoint]
        public var checkpoints: [CheckpointInfo]
        public var endsWithSwitch: Bool
        public var crcFailureCount: Int
        public var crcFailureLSNs: [LSN]
        public var firstLSN: LSN?
        public var lastLSN: LSN?
        public var continuesIntoNext: Bool
    }

    public static func document(_ s: SegmentSummary, header: LongPageHeader, file: String) -> Document {
        Document(file: file, pgVersion: header.majorVersion.map { Int($0) }, timeline: UInt32(header.timeline), segmentSize: Int(header.segmentSize),
                 recordCount: s.records, commitCount: s.commits, abortCount: s.aborts, hasCommits: s.commits > 0,
                 firstCommitTime: s.firstCommitTime, lastCommitTime: s.lastCommitTime,
                 firstXactTime: s.firstXactTime, lastXactTime: s.lastXactTime, restorePoints: s.restorePoints,
                 checkpoints: s.checkpoints, endsWithSwitch: s.endsWithSwitch, crcFailureCount: s.crcFailures,
                 crcFailureLSNs: s.crcFailureLSNs, firstLSN: s.firstLSN, lastLSN: s.lastLSN, continuesIntoNext: s.continuesIntoNext)
    }

    public static func json(_ s: SegmentSummary, header: LongPageHeader, file: String) throws -> String {
        try JSONOutput.render(document(s, header: header, file: file))
    }

    public static func text(_ s: SegmentSummary, header: LongPageHeader, file: String) -> String {
        var out = ["file: \(file)  (PostgreSQL \(header.majorVersion.map(String.init) ?? "?"), timeline \(header.timeline), \(Human.bytes(header.segmentSize)))"]
        out.append("records: \(s.records)  (\(s.firstLSN?.description ?? "-") .. \(s.lastLSN?.description ?? "-"))\(s.continuesIntoNext ? "; the last continues into the next segment" : "")")
        if s.commits + s.aborts == 0 {
            out.append("commits: 0, aborts: 0 (no transaction ends in this segment)")
        } else {
            out.append("commits: \(s.commits)  \(s.firstCommitTime?.iso8601 ?? "-") .. \(s.lastCommitTime?.iso8601 ?? "-")")
            out.append("aborts: \(s.aborts)")
        }
        for r in s.restorePoints { out.append("restore point \"\(r.name)\" at \(r.time.iso8601) (\(r.lsn))") }
        for c in s.checkpoints { out.append("checkpoint\(c.shutdown ? " (shutdown)" : "") at \(c.lsn), \(c.time.iso8601)") }
        out.append("ends with switch: \(s.endsWithSwitch ? "yes" : "no")")
        out.append("CRC failures: \(s.crcFailures)\(s.crcFailureLSNs.isEmpty ? "" : " at " + s.crcFailureLSNs.map(\.description).joined(separator: ", "))")
        return out.joined(separator: "\n")
    }
}
