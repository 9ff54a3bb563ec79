/// The fields of a `backup_label` or a backup history (`.backup`) file.
///
/// ```
/// START WAL LOCATION: 0/7000028 (file 000000010000000000000007)
/// STOP WAL LOCATION: 0/7000100 (file 000000010000000000000007)   (backup history only)
/// CHECKPOINT LOCATION: 0/7000060
/// START TIME: 2026-11-26 03:48:13 UTC
/// LABEL: facts label
/// START TIMELINE: 1
/// ```
public struct BackupLabel: Equatable, Sendable {
    public var startLSN: LSN
    public var stopLSN: LSN?
    public var checkpointLSN: LSN?
    public var startTimeline: TimeLineID?
    public var stopTimeline: TimeLineID?
    public var startTime: String?
    public var stopTime: String?
    public var label: String?
    public var fields: [String: String]

    public init(text: String) throws(WALFormatError) {
        var f: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].trimmingSpaces)
            f[key] = value
        }
        func lsn(_ k: String) -> LSN? {
            guard let v = f[k] else { return nil }
            return LSN(v.split(separator: " ").first ?? "")
        }
        guard let start = lsn("START WAL LOCATION") else { throw .malformedLabel("no START WAL LOCATION") }
        startLSN = start
        stopLSN = lsn("STOP WAL LOCATION")
        checkpointLSN = lsn("CHECKPOINT LOCATION")
        startTimeline = f["START TIMELINE"].flatMap { UInt32($0) }
        stopTimeline = f["STOP TIMELINE"].flatMap { UInt32($0) }
        startTime = f["START TIME"]
        stopTime = f["STOP TIME"]
        label = f["LABEL"]
        fields = f
    }
}

extension BackupLabel {
    /// Checks a backup history file (`TTTTTTTTSSSSSSSSSSSSSSSS.OOOOOOOO.backup`) against its name, as
    /// PostgreSQL names it (`BackupHistoryFilePath(stoptli, segment of the start, start offset)`):
    /// START WAL LOCATION lies in the named segment number at byte `offset`, and the `(file ...)` it
    /// names, when present, is that segment; the name's timeline is STOP TIMELINE (START TIMELINE when
    /// there is no stop line); STOP WAL LOCATION, when present, is not before the start.
    public func validateBackupHistoryName(segment: String, offset: UInt32, segmentSize: WALSegmentSize) throws(WALFormatError) {
        guard let id = SegmentID(fileName: segment, size: segmentSize) else {
            throw .backupNameMismatch("\(segment) is not a segment name for \(segmentSize.bytes)-byte segments")
        }
        let startSegno = startLSN.value / segmentSize.bytes
        let startOffset = startLSN.value % segmentSize.bytes
        guard startSegno == id.segno, startOffset == UInt64(offset) else {
            throw .backupNameMismatch("START WAL LOCATION \(startLSN) is segment \(SegmentID(timeline: id.timeline, segno: startSegno).fileName(size: segmentSize)) " +
                                      "offset \(hex8(startOffset)), the name says \(segment) offset \(hex8(UInt64(offset)))")
        }
        if let parts = fields["START WAL LOCATION"]?.split(separator: " "), parts.count >= 3, parts[1] == "(file",
           parts[2].hasSuffix(")") {
            let file = parts[2].dropLast()
            let startTLI = startTimeline ?? id.timeline
            guard let named = SegmentID(fileName: file, size: segmentSize), named.segno == id.segno, named.timeline == startTLI else {
                throw .backupNameMismatch("START WAL LOCATION names file \(file), which is not segment \(segment.suffix(16)) on timeline \(startTLI)")
            }
        }
        if let t = stopTimeline ?? startTimeline, t != id.timeline {
            throw .backupNameMismatch("the backup \(stopTimeline != nil ? "ended" : "started") on timeline \(t), the name's timeline is \(id.timeline)")
        }
        if let stop = stopLSN, stop < startLSN {
            throw .backupNameMismatch("STOP WAL LOCATION \(stop) is before START WAL LOCATION \(startLSN)")
        }
    }
}
