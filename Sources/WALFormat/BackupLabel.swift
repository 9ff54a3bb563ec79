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
