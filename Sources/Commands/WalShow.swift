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

    /// One JSON object; absent times are `null` (never omitted), LSNs `X/Y`, times ISO 8601 with offset.
    public static func json(_ s: SegmentSummary, header: LongPageHeader, file: String) -> String {
        func t(_ v: PGTimestamp?) -> Any { v.map { $0.iso8601 } ?? NSNull() }
        func l(_ v: LSN?) -> Any { v.map { $0.description } ?? NSNull() }
        let object: [String: Any] = [
            "file": file,
            "pgVersion": header.majorVersion.map { $0 as Any } ?? NSNull(),
            "timeline": Int(header.timeline),
            "segmentSize": Int(header.segmentSize),
            "records": s.records,
            "commits": s.commits,
            "aborts": s.aborts,
            "firstCommitTime": t(s.firstCommitTime),
            "lastCommitTime": t(s.lastCommitTime),
            "firstXactTime": t(s.firstXactTime),
            "lastXactTime": t(s.lastXactTime),
            "restorePoints": s.restorePoints.map { ["name": $0.name, "time": $0.time.iso8601, "lsn": $0.lsn.description] },
            "checkpoints": s.checkpoints.map { ["lsn": $0.lsn.description, "time": $0.time.iso8601, "shutdown": $0.shutdown] as [String: Any] },
            "endsWithSwitch": s.endsWithSwitch,
            "crcFailures": s.crcFailures,
            "crcFailureLSNs": s.crcFailureLSNs.map(\.description),
            "firstLSN": l(s.firstLSN),
            "lastLSN": l(s.lastLSN),
            "continuesIntoNext": s.continuesIntoNext,
            "hasCommits": s.commits > 0,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    public static func text(_ s: SegmentSummary, header: LongPageHeader, file: String) -> String {
        var out = ["file: \(file)  (PostgreSQL \(header.majorVersion.map(String.init) ?? "?"), timeline \(header.timeline), \(header.segmentSize / 1048576) MiB)"]
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
