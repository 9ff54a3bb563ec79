#if canImport(Glibc)
import Glibc
#endif

/// What a setting's value must be. The one rule for every reader: `Configuration` (Commands) and
/// `FastConfig` both validate with `SettingType.accepts` and `Setting.crossCheck`, so the fast front
/// never answers with a configuration the full binary refuses. Foundation-free (walctl-fast).
public enum SettingType: Equatable, Sendable {
    /// Any text.
    case string
    /// A file or directory path.
    case path
    /// The `repository` URL: `file:///absolute/path`, `/absolute/path` or `s3://bucket/prefix`
    /// (no `.` or `..` segments in the prefix).
    case repositoryURL
    /// An endpoint URL: `http://host[:port][/path]` or `https://...`.
    case endpointURL
    /// true/false (also on/off, yes/no, 1/0, y/n; any case).
    case bool
    /// A decimal integer in the range.
    case integer(ClosedRange<Int64>)
    /// Whole seconds in the range.
    case seconds(ClosedRange<Int64>)
    /// Bytes in the range.
    case bytes(ClosedRange<Int64>)
    /// One of these words (any case).
    case choice([String])
    /// A duration: a positive whole number with a unit, `d` (days), `h` (hours), `m` (minutes) or
    /// `s` (seconds): `14d`, `36h`, `90m` (retention-window, drill-max-age).
    case duration

    /// The allowed values, for error messages and the reference table.
    public var allowed: String {
        switch self {
        case .string: return "any text"
        case .path: return "a path"
        case .repositoryURL: return "file:///absolute/path or s3://bucket/prefix (no . or .. segments)"
        case .endpointURL: return "http://host[:port] or https://host[:port]"
        case .bool: return "true or false (also on/off, yes/no, 1/0)"
        case .integer(let r): return "an integer from \(r.lowerBound) to \(r.upperBound)"
        case .seconds(let r): return "whole seconds from \(r.lowerBound) to \(r.upperBound)"
        case .bytes(let r): return "a number of bytes from \(r.lowerBound) to \(r.upperBound)"
        case .choice(let words): return "one of " + words.joined(separator: ", ")
        case .duration: return "a duration: a whole number with d, h, m or s (14d, 36h, 90m)"
        }
    }

    /// True when `value` (non-empty; empty means unset) is valid.
    public func accepts(_ value: String) -> Bool {
        switch self {
        case .string, .path: return true
        case .repositoryURL: return SettingType.validRepository(value)
        case .endpointURL: return SettingType.endpointHost(value) != nil
        case .bool: return SettingType.parseBool(value) != nil
        case .integer(let r), .seconds(let r), .bytes(let r):
            guard let i = SettingType.parseInteger(value) else { return false }
            return r.contains(i)
        case .choice(let words): return words.contains(SettingType.lower(value))
        case .duration: return SettingType.parseDuration(value) != nil
        }
    }

    /// Seconds of a duration (`14d`, `36h`, `90m`), nil when it is not one or not positive.
    public static func parseDuration(_ v: String) -> Int64? {
        guard let unit = v.utf8.last, let n = parseInteger(String(v.dropLast())), n > 0, n <= 100 * 365 * 24 * 60 else { return nil }
        switch unit {
        case 0x64, 0x44: return n <= 100 * 365 ? n * 86_400 : nil   // d
        case 0x68, 0x48: return n <= 100 * 365 * 24 ? n * 3_600 : nil  // h
        case 0x6D, 0x4D: return n * 60                                  // m
        case 0x73, 0x53: return n                                       // s
        default: return nil
        }
    }

    /// A plain decimal (optional leading `-`), nil on anything else or overflow.
    public static func parseInteger(_ v: String) -> Int64? {
        let u = Array(v.utf8)
        let digits = u.first == 0x2D ? u.dropFirst() : u[...]
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(v)
    }

    public static func parseBool(_ v: String) -> Bool? {
        switch lower(v) {
        case "true", "on", "yes", "1", "y": return true
        case "false", "off", "no", "0", "n": return false
        default: return nil
        }
    }

    static func lower(_ v: String) -> String {
        String(decoding: v.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 }, as: UTF8.self)
    }

    static func validRepository(_ v: String) -> Bool {
        if v.hasPrefix("file://") { return v.utf8.dropFirst(7).first == 0x2F }
        if v.hasPrefix("/") { return true }
        guard v.hasPrefix("s3://") else { return false }
        let parts = v.utf8.dropFirst(5).split(separator: 0x2F, omittingEmptySubsequences: false)
        guard let bucket = parts.first, !bucket.isEmpty else { return false }
        for p in parts.dropFirst() {
            let s = Array(p)
            if s == [0x2E] || s == [0x2E, 0x2E] { return false }
        }
        return true
    }

    /// The host of an `http://` / `https://` endpoint, nil when it is not one.
    public static func endpointHost(_ v: String) -> (https: Bool, host: String)? {
        let https: Bool
        let rest: Substring
        if v.hasPrefix("https://") { https = true; rest = v.dropFirst(8) } else if v.hasPrefix("http://") { https = false; rest = v.dropFirst(7) } else { return nil }
        var authority = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
        } else {
            host = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        guard !host.isEmpty else { return nil }
        return (https, String(host))
    }

    /// True for `localhost`, `127.x.x.x` and `::1`.
    public static func isLoopback(_ host: String) -> Bool {
        let h = lower(host)
        return h == "localhost" || h.hasSuffix(".localhost") || h.hasPrefix("127.") || h == "::1"
    }
}

/// Every setting walctl knows: the typed key. A misspelt key in code does not compile
/// (`config[.archiveWorkers]`); the config file, `WALCTL_*` and `--set` use `name`.
public enum Setting: String, CaseIterable, Sendable {
    case repository = "repository"
    case catalog = "catalog"
    case compressType = "compress-type"
    case compressLevel = "compress-level"
    case pgdata = "pgdata"
    case archiveGetRetryTime = "archive-get-retry-time"
    case archiveGetOnError = "archive-get-on-error"
    case archiveGetFsync = "archive-get-fsync"
    case archiveCheckTimeout = "archive-check-timeout"
    case logLevel = "log-level"
    case progressInterval = "progress-interval"
    case archiveAsync = "archive-async"
    case archiveWorkers = "archive-workers"
    case archiveSpoolMax = "archive-spool-max"
    case spoolPath = "spool-path"
    case restorePrefetch = "restore-prefetch"
    case restoreSpoolMax = "restore-spool-max"
    case restoreWorkers = "restore-workers"
    case archivePushTimeout = "archive-push-timeout"
    case archivePushQueueMax = "archive-push-queue-max"
    case archivePushMaxAge = "archive-push-max-age"
    case s3Endpoint = "s3-endpoint"
    case s3AllowHTTP = "s3-allow-http"
    case s3Region = "s3-region"
    case s3URIStyle = "s3-uri-style"
    case s3CAFile = "s3-ca-file"
    case s3SSE = "s3-sse"
    case s3StorageClass = "s3-storage-class"
    case s3Key = "s3-key"
    case s3KeySecret = "s3-key-secret"
    case s3Token = "s3-token"
    case s3Profile = "s3-profile"
    case s3PartSize = "s3-part-size"
    case s3Retries = "s3-retries"
    case s3UploadThreads = "s3-upload-threads"
    case s3ConnectTimeout = "s3-connect-timeout"
    case s3StallTimeout = "s3-stall-timeout"
    case pgBin = "pg-bin"
    case drillMaxAge = "drill-max-age"
    case repositoryCipher = "repository-cipher"
    case repositoryCipherPass = "repository-cipher-pass"
    case repositoryCipherPassFile = "repository-cipher-pass-file"
    case repositoryCipherKMSKey = "repository-cipher-kms-key"
    case s3ObjectLockMode = "s3-object-lock-mode"
    case s3ObjectLockDays = "s3-object-lock-days"
    case retentionWindow = "retention-window"
    case retentionFull = "retention-full"
    case retentionArchiveFull = "retention-archive-full"
    case expireAuto = "expire-auto"
    case backupType = "backup-type"

    public var name: String { rawValue }

    static let day: Int64 = 86_400
    static let mib: Int64 = 1 << 20
    /// 2^50 bytes (1 PiB): the largest spool or queue size accepted.
    static let maxBytes: Int64 = 1 << 50

    public var type: SettingType {
        switch self {
        case .repository: return .repositoryURL
        case .catalog, .pgdata, .spoolPath, .s3CAFile, .pgBin: return .path
        case .drillMaxAge: return .duration
        case .compressType: return .choice(["zstd", "gzip", "none", "zst", "gz", "off"])
        case .compressLevel: return .integer(0...19)
        case .archiveGetRetryTime: return .seconds(0...7 * Self.day)
        case .archiveGetOnError: return .choice(["abort", "not-found"])
        case .archiveCheckTimeout: return .seconds(1...Self.day)
        case .logLevel: return .choice(["error", "warning", "info", "debug"])
        case .progressInterval: return .seconds(1...Self.day)
        case .archiveAsync, .archiveGetFsync, .s3AllowHTTP: return .bool
        case .archiveWorkers: return .integer(1...64)
        case .archiveSpoolMax, .restoreSpoolMax: return .bytes(16 * Self.mib...Self.maxBytes)
        case .restorePrefetch: return .integer(0...1024)
        case .restoreWorkers: return .integer(0...16)
        case .archivePushTimeout: return .seconds(1...Self.day)
        case .archivePushQueueMax: return .bytes(0...Self.maxBytes)
        case .archivePushMaxAge: return .seconds(0...365 * Self.day)
        case .s3Endpoint: return .endpointURL
        case .s3Region, .s3SSE, .s3StorageClass, .s3Key, .s3KeySecret, .s3Token, .s3Profile: return .string
        case .s3URIStyle: return .choice(["host", "path"])
        case .s3PartSize: return .bytes(5 * Self.mib...5 * 1024 * Self.mib)
        case .s3Retries: return .integer(0...100)
        case .s3UploadThreads: return .integer(1...64)
        case .s3ConnectTimeout, .s3StallTimeout: return .seconds(1...3600)
        case .repositoryCipher: return .choice(["none", "aes-256-gcm"])
        case .repositoryCipherPass: return .string
        case .repositoryCipherPassFile: return .path
        case .repositoryCipherKMSKey: return .string
        case .s3ObjectLockMode: return .choice(["governance", "compliance"])
        case .s3ObjectLockDays: return .integer(1...36500)
        case .retentionWindow: return .duration
        case .retentionFull, .retentionArchiveFull: return .integer(1...100_000)
        case .expireAuto: return .bool
        case .backupType: return .choice(["full", "incremental", "incremental-or-full"])
        }
    }

    public var defaultValue: String? {
        switch self {
        case .catalog: return "/var/lib/walctl/catalog.db"
        case .compressType: return "zstd"
        case .archiveGetRetryTime: return "60"
        case .archiveGetOnError: return "abort"
        case .archiveCheckTimeout: return "60"
        case .logLevel: return "warning"
        case .progressInterval: return "10"
        case .archiveAsync, .archiveGetFsync: return "false"
        case .archiveWorkers: return "2"
        case .archiveSpoolMax, .restoreSpoolMax: return "1073741824"
        case .restorePrefetch, .restoreWorkers: return "0"
        case .archivePushTimeout: return "60"
        case .s3AllowHTTP: return "false"
        case .s3Region: return "us-east-1"
        case .s3URIStyle: return "host"
        case .s3PartSize: return "16777216"
        case .s3Retries: return "4"
        case .s3UploadThreads: return "2"
        case .s3ConnectTimeout: return "10"
        case .s3StallTimeout: return "30"
        case .drillMaxAge: return "92d"
        case .repositoryCipher: return "none"
        case .expireAuto: return "false"
        case .backupType: return "full"
        default: return nil
        }
    }

    public var help: String {
        switch self {
        case .repository: return "repository URL: file:///path or s3://bucket/prefix"
        case .catalog: return "path of the local catalog (an index; rebuilt from the repository when missing)"
        case .compressType: return "zstd, gzip or none"
        case .compressLevel: return "compression level (zstd 1-19, default 3; gzip 1-9, default 6; none 0)"
        case .pgdata: return "the cluster's data directory"
        case .archiveGetRetryTime: return "seconds archive-get retries a failing repository before giving up (exit 255)"
        case .archiveGetOnError: return "abort: exit 255 so PostgreSQL stops recovery with walctl's message; not-found: exit 1 (for standbys that retry by themselves)"
        case .archiveGetFsync: return "fsync each file archive-get restores before exiting (off: PostgreSQL fsyncs a restored file itself when it keeps it, and fetches it again after a crash; docs/recovery.md)"
        case .archiveCheckTimeout: return "seconds `walctl check` and `walctl backup` wait for WAL to arrive"
        case .logLevel: return "error, warning, info or debug (messages go to stderr: PostgreSQL's log; -q is error, -v is debug)"
        case .progressInterval: return "seconds between two progress lines of backup, restore-backup, recover, catalog rebuild and verify --deep when stderr is not a terminal (on a terminal the line is live); `--no-progress` or -q: none"
        case .archiveAsync: return "push other ready segments in parallel through a spool"
        case .archiveWorkers: return "parallel workers for asynchronous archiving"
        case .archiveSpoolMax: return "bytes the archive spool may hold"
        case .spoolPath: return "spool directory (default: <PGDATA>/walctl_spool; must belong to the running user, not group/other-writable)"
        case .restorePrefetch: return "segments archive-get fetches ahead into the spool"
        case .restoreSpoolMax: return "bytes the restore spool may hold"
        case .restoreWorkers: return "parallel fetches of the restore prefetcher (0: 1 on a local repository, 4 on S3)"
        case .archivePushTimeout: return "seconds an asynchronous archive-push waits for its file before exiting 1 (PostgreSQL retries)"
        case .archivePushQueueMax: return "safety valve (off when unset or 0): past this many bytes of .ready WAL, report files archived WITHOUT storing them (PITR gap, logged)"
        case .archivePushMaxAge: return "safety valve (off when unset or 0): report a file archived WITHOUT storing it once it has waited this many seconds (PITR gap, logged)"
        case .s3Endpoint: return "S3 endpoint URL (https://...; http:// only to a loopback host unless s3-allow-http = true)"
        case .s3AllowHTTP: return "allow an http:// s3-endpoint on a non-loopback host (requests and credentials unencrypted)"
        case .s3Region: return "S3 region"
        case .s3URIStyle: return "host (virtual-hosted) or path"
        case .s3CAFile: return "CA bundle for TLS verification"
        case .s3SSE: return "server-side encryption header value (AES256, aws:kms)"
        case .s3StorageClass: return "storage class for new objects"
        case .s3Key: return "access key id (else AWS_ACCESS_KEY_ID or the profile)"
        case .s3KeySecret: return "secret access key (else AWS_SECRET_ACCESS_KEY or the profile)"
        case .s3Token: return "session token (else AWS_SESSION_TOKEN)"
        case .s3Profile: return "profile in ~/.aws/credentials (else AWS_PROFILE)"
        case .s3PartSize: return "multipart upload part size in bytes (S3's minimum is 5 MiB, maximum 5 GiB)"
        case .s3Retries: return "retries of a failing S3 request (exponential backoff with jitter)"
        case .s3UploadThreads: return "parallel part uploads of one multipart object"
        case .s3ConnectTimeout: return "seconds to establish a connection"
        case .s3StallTimeout: return "seconds without progress before a transfer is abandoned and retried"
        case .pgBin: return "directory of the PostgreSQL server binaries `walctl drill` runs (default: `pg_config --bindir` when its major version matches the backup's, else /usr/lib/postgresql/N/bin or /usr/pgsql-N/bin)"
        case .drillMaxAge: return "`walctl info` and `walctl metrics` users are warned when the last successful drill is older than this (default 92d, the runbook's quarter)"
        case .repositoryCipher: return "client-side encryption of every object: none or aes-256-gcm (chosen at `walctl init`; docs/encryption.md)"
        case .repositoryCipherPass: return "the encrypted repository's passphrase (else repository-cipher-pass-file)"
        case .repositoryCipherPassFile: return "file holding the passphrase (its first line; keep it 0600)"
        case .repositoryCipherKMSKey: return "AWS KMS key (arn:..., alias/... or a key id) that wraps the data key instead of a passphrase (chosen at `walctl init`; endpoint AWS_ENDPOINT_URL_KMS, else AWS_ENDPOINT_URL; docs/encryption.md)"
        case .s3ObjectLockMode: return "S3 Object Lock retention on every object stored: governance or compliance (the bucket must have Object Lock enabled; with s3-object-lock-days)"
        case .s3ObjectLockDays: return "days each stored object is retained by S3 Object Lock (with s3-object-lock-mode)"
        case .retentionWindow: return "walctl expire keeps every instant from now minus this window to now recoverable (the newest backup that stopped at or before the window's start, and all WAL from its start on; docs/retention.md)"
        case .retentionFull: return "walctl expire keeps at least the newest N complete backups"
        case .retentionArchiveFull: return "how many of the backups kept by retention-full keep their WAL for PITR (older kept backups keep only the WAL from their start to their stop; default: all)"
        case .expireAuto: return "run walctl expire after each successful walctl backup"
        case .backupType: return "what walctl backup takes: full, incremental (only what changed since the newest backup of the chain; refused when there is none) or incremental-or-full (a full one then); docs/backup.md"
        }
    }

    /// Secrets are never printed (`walctl config`, errors, `--help`).
    public var secret: Bool { self == .s3KeySecret || self == .s3Token || self == .repositoryCipherPass }

    /// `WALCTL_` + the name in upper case with `-` as `_`: `s3-endpoint` -> `WALCTL_S3_ENDPOINT`.
    public var environmentName: String { FastPath.environmentName(rawValue) }

    public static func named(_ name: String) -> Setting? { Setting(rawValue: name) }

    /// A value refused by a rule between settings: the setting, its value and what is expected.
    public struct Problem: Equatable, Sendable {
        public var setting: Setting
        public var value: String
        public var expected: String
    }

    /// The rules between settings, checked after every value passed `type.accepts`. `value` returns
    /// a setting's value, nil when unset or empty.
    public static func crossCheck(_ value: (Setting) -> String?) -> Problem? {
        if let level = value(.compressLevel), let l = SettingType.parseInteger(level) {
            let type = SettingType.lower(value(.compressType) ?? "zstd")
            let range: ClosedRange<Int64> = (type == "gzip" || type == "gz") ? 1...9 : (type == "none" || type == "off") ? 0...0 : 1...19
            if !range.contains(l) {
                return Problem(setting: .compressLevel, value: level, expected: "\(range.lowerBound) to \(range.upperBound) for compress-type \(type)")
            }
        }
        if SettingType.lower(value(.repositoryCipher) ?? "none") != "none", value(.repositoryCipherPass) == nil, value(.repositoryCipherPassFile) == nil,
           value(.repositoryCipherKMSKey) == nil {
            return Problem(setting: .repositoryCipher, value: value(.repositoryCipher) ?? "",
                           expected: "a passphrase with it: repository-cipher-pass, repository-cipher-pass-file or WALCTL_REPOSITORY_CIPHER_PASS (or an AWS KMS key: repository-cipher-kms-key)")
        }
        if let k = value(.repositoryCipherKMSKey) {
            if SettingType.lower(value(.repositoryCipher) ?? "none") == "none" {
                return Problem(setting: .repositoryCipherKMSKey, value: k, expected: "repository-cipher = aes-256-gcm with it")
            }
            if value(.repositoryCipherPass) != nil || value(.repositoryCipherPassFile) != nil {
                return Problem(setting: .repositoryCipherKMSKey, value: k,
                               expected: "no passphrase with it (a repository's data key is wrapped by KMS or by a passphrase, not both): unset repository-cipher-pass / repository-cipher-pass-file")
            }
        }
        if (value(.s3ObjectLockMode) == nil) != (value(.s3ObjectLockDays) == nil) {
            let set: Setting = value(.s3ObjectLockMode) == nil ? .s3ObjectLockDays : .s3ObjectLockMode
            return Problem(setting: set, value: value(set) ?? "", expected: "s3-object-lock-mode and s3-object-lock-days set together")
        }
        if let e = value(.s3Endpoint), let (https, host) = SettingType.endpointHost(e), !https, !SettingType.isLoopback(host),
           SettingType.parseBool(value(.s3AllowHTTP) ?? "false") != true {
            return Problem(setting: .s3Endpoint, value: e,
                           expected: "https:// (http:// sends requests and credentials unencrypted; allowed to a loopback host, or to \(host) with s3-allow-http = true)")
        }
        return nil
    }
}

/// Strips an inline comment from a config file value: from the first `#` that follows a space or a
/// tab (`repository = file:///x   # my repo`). A value in double quotes is taken as written
/// (`s3-key-secret = "a #b"`); text after the closing quote must be empty or a comment. nil when the
/// quotes are unbalanced. Leading and trailing blanks are removed.
public func configValue(_ raw: [UInt8]) -> [UInt8]? {
    let v = FastConfig.trim(raw)
    if v.first == 0x22 {
        guard let close = v.dropFirst().firstIndex(of: 0x22) else {
            return v.count >= 2 && v.last == 0x22 ? Array(v.dropFirst().dropLast()) : nil
        }
        let rest = FastConfig.trim(Array(v[(close + 1)...]))
        guard rest.isEmpty || rest.first == 0x23 else { return nil }
        return Array(v[1..<close])
    }
    if v.first == 0x23 { return [] }
    var i = 1
    while i < v.count {
        if v[i] == 0x23 && (v[i - 1] == 0x20 || v[i - 1] == 0x09) { return FastConfig.trim(Array(v[..<i])) }
        i += 1
    }
    return v
}
