import Foundation
import Codec

/// One setting walctl knows: its name in the config file, its environment variable and its default.
public struct SettingDefinition: Sendable {
    public var name: String
    public var defaultValue: String?
    public var help: String
    /// Secrets are never printed (`walctl config`, errors, `--help`).
    public var secret: Bool
    /// `WALCTL_` + the name in upper case with `-` as `_`: `s3-endpoint` -> `WALCTL_S3_ENDPOINT`.
    public var environmentName: String { "WALCTL_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
}

/// Every setting, in one table (documented in docs/configuration.md and config/walctl.conf).
public enum Settings {
    public static let all: [SettingDefinition] = [
        .init(name: "repository", defaultValue: nil, help: "repository URL: file:///path or s3://bucket/prefix", secret: false),
        .init(name: "catalog", defaultValue: "/var/lib/walctl/catalog.db", help: "path of the local catalog (an index; rebuilt from the repository when missing)", secret: false),
        .init(name: "compress-type", defaultValue: "zstd", help: "zstd, gzip or none", secret: false),
        .init(name: "compress-level", defaultValue: nil, help: "compression level (zstd 1-19, default 3; gzip 1-9, default 6)", secret: false),
        .init(name: "pgdata", defaultValue: nil, help: "the cluster's data directory", secret: false),
        .init(name: "archive-get-retry-time", defaultValue: "60", help: "seconds archive-get retries a failing repository before giving up", secret: false),
        .init(name: "archive-get-on-error", defaultValue: "abort", help: "abort: exit 255 so PostgreSQL stops recovery with walctl's message; not-found: exit 1 (for standbys that retry by themselves)", secret: false),
        .init(name: "archive-get-fsync", defaultValue: "false", help: "fsync each file archive-get restores before exiting (off: PostgreSQL fsyncs a restored file itself when it keeps it, and fetches it again after a crash; docs/recovery.md)", secret: false),
        .init(name: "archive-check-timeout", defaultValue: "60", help: "seconds `walctl check` and `walctl backup` wait for WAL to arrive", secret: false),
        .init(name: "log-level", defaultValue: "warning", help: "error, warning, info or debug (messages go to stderr: PostgreSQL's log)", secret: false),
        .init(name: "archive-async", defaultValue: "false", help: "push other ready segments in parallel through a spool", secret: false),
        .init(name: "archive-workers", defaultValue: "2", help: "parallel workers for asynchronous archiving", secret: false),
        .init(name: "archive-spool-max", defaultValue: "1073741824", help: "bytes the archive spool may hold", secret: false),
        .init(name: "spool-path", defaultValue: nil, help: "spool directory (default: inside pg_wal's parent, or /tmp)", secret: false),
        .init(name: "restore-prefetch", defaultValue: "0", help: "segments archive-get fetches ahead into the spool", secret: false),
        .init(name: "restore-spool-max", defaultValue: "1073741824", help: "bytes the restore spool may hold", secret: false),
        .init(name: "restore-workers", defaultValue: "0", help: "parallel fetches of the restore prefetcher (0: 1 on a local repository, 4 on S3)", secret: false),
        .init(name: "archive-push-timeout", defaultValue: "60", help: "seconds an asynchronous archive-push waits for its file before exiting 1 (PostgreSQL retries)", secret: false),
        .init(name: "archive-push-queue-max", defaultValue: nil, help: "safety valve (off when unset): past this many bytes of .ready WAL, report files archived WITHOUT storing them (PITR gap, logged)", secret: false),
        .init(name: "archive-push-max-age", defaultValue: nil, help: "safety valve (off when unset): report a file archived WITHOUT storing it once it has waited this many seconds (PITR gap, logged)", secret: false),
        .init(name: "s3-endpoint", defaultValue: nil, help: "S3 endpoint URL (https://..., http:// only for local emulators)", secret: false),
        .init(name: "s3-region", defaultValue: "us-east-1", help: "S3 region", secret: false),
        .init(name: "s3-uri-style", defaultValue: "host", help: "host (virtual-hosted) or path", secret: false),
        .init(name: "s3-ca-file", defaultValue: nil, help: "CA bundle for TLS verification", secret: false),
        .init(name: "s3-sse", defaultValue: nil, help: "server-side encryption header value (AES256, aws:kms)", secret: false),
        .init(name: "s3-storage-class", defaultValue: nil, help: "storage class for new objects", secret: false),
        .init(name: "s3-key", defaultValue: nil, help: "access key id (else AWS_ACCESS_KEY_ID or the profile)", secret: false),
        .init(name: "s3-key-secret", defaultValue: nil, help: "secret access key (else AWS_SECRET_ACCESS_KEY or the profile)", secret: true),
        .init(name: "s3-token", defaultValue: nil, help: "session token (else AWS_SESSION_TOKEN)", secret: true),
        .init(name: "s3-profile", defaultValue: nil, help: "profile in ~/.aws/credentials (else AWS_PROFILE)", secret: false),
        .init(name: "s3-part-size", defaultValue: "16777216", help: "multipart upload part size in bytes", secret: false),
        .init(name: "s3-retries", defaultValue: "4", help: "retries of a failing S3 request (exponential backoff with jitter)", secret: false),
        .init(name: "s3-upload-threads", defaultValue: "2", help: "parallel part uploads of one multipart object", secret: false),
        .init(name: "s3-connect-timeout", defaultValue: "10", help: "seconds to establish a connection", secret: false),
        .init(name: "s3-stall-timeout", defaultValue: "30", help: "seconds without progress before a transfer is abandoned and retried", secret: false),
    ]
    static let byName: [String: SettingDefinition] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
    public static func definition(_ name: String) -> SettingDefinition? { byName[name] }

    /// Where the config file is looked for when neither `--config` nor `WALCTL_CONFIG` names one.
    public static let defaultConfigPath = "/etc/walctl/walctl.conf"
}

/// Configuration problems: always one line naming the setting and where it came from.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case syntax(path: String, line: Int, text: String)
    case unknownSetting(name: String, source: String)
    case invalidValue(name: String, value: String, expected: String)
    case missing(name: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): return "cannot read config file \(p): \(r)"
        case .syntax(let p, let l, let t): return "\(p) line \(l): expected `name = value`, found \"\(t)\""
        case .unknownSetting(let n, let s): return "unknown setting '\(n)' in \(s) (see `walctl help` or docs/configuration.md)"
        case .invalidValue(let n, let v, let e): return "setting \(n) = \"\(v)\" is invalid: expected \(e)"
        case .missing(let n):
            return "setting \(n) is not set: put `\(n) = ...` in the config file, set \(Settings.definition(n)?.environmentName ?? n), or pass --\(n)"
        }
    }
}

/// The resolved settings: defaults, then the config file, then `WALCTL_*` environment variables, then
/// flags (the later source wins).
public struct Configuration: Sendable {
    public private(set) var values: [String: String] = [:]
    public private(set) var sources: [String: String] = [:]
    /// The config file that was read, if any.
    public private(set) var configFile: String?

    public init() {
        for d in Settings.all { if let v = d.defaultValue { values[d.name] = v; sources[d.name] = "default" } }
    }

    /// Loads the layers. `configPath` is `--config`; when nil, `WALCTL_CONFIG` then the default path
    /// are tried, and a missing default file is not an error.
    public static func load(flags: [String: String], environment: [String: String], configPath: String?) throws(ConfigurationError) -> Configuration {
        var c = Configuration()
        let explicit = configPath ?? environment["WALCTL_CONFIG"]
        let path = explicit ?? Settings.defaultConfigPath
        if let text = try readConfigFile(path, required: explicit != nil) {
            try c.apply(fileText: text, path: path)
            c.configFile = path
        }
        for d in Settings.all {
            if let v = environment[d.environmentName] { c.values[d.name] = v; c.sources[d.name] = d.environmentName }
        }
        for (k, v) in flags {
            guard Settings.definition(k) != nil else { throw .unknownSetting(name: k, source: "command line") }
            c.values[k] = v
            c.sources[k] = "--" + k
        }
        return c
    }

    static func readConfigFile(_ path: String, required: Bool) throws(ConfigurationError) -> String? {
        guard FileManager.default.fileExists(atPath: path) else {
            if required { throw .unreadable(path: path, reason: "no such file") }
            return nil
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Parses `name = value` lines; `#` starts a comment; `[section]` headers are ignored.
    public mutating func apply(fileText: String, path: String) throws(ConfigurationError) {
        for (i, raw) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || (line.hasPrefix("[") && line.hasSuffix("]")) { continue }
            guard let eq = line.firstIndex(of: "=") else { throw .syntax(path: path, line: i + 1, text: line) }
            let name = line[..<eq].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            guard Settings.definition(name) != nil else { throw .unknownSetting(name: name, source: "\(path) line \(i + 1)") }
            values[name] = value
            sources[name] = "\(path) line \(i + 1)"
        }
    }

    public subscript(_ name: String) -> String? {
        guard let v = values[name], !v.isEmpty else { return nil }
        return v
    }

    public func require(_ name: String) throws(ConfigurationError) -> String {
        guard let v = self[name] else { throw .missing(name: name) }
        return v
    }

    public func integer(_ name: String) throws(ConfigurationError) -> Int? {
        guard let v = self[name] else { return nil }
        guard let i = Int(v), i >= 0 else { throw .invalidValue(name: name, value: v, expected: "a non-negative integer") }
        return i
    }

    public func bool(_ name: String) throws(ConfigurationError) -> Bool {
        guard let v = self[name]?.lowercased() else { return false }
        switch v {
        case "true", "on", "yes", "1", "y": return true
        case "false", "off", "no", "0", "n": return false
        default: throw .invalidValue(name: name, value: v, expected: "true or false")
        }
    }

    /// `compress-type` and `compress-level`, validated together (the level range depends on the codec).
    public func compression() throws(ConfigurationError) -> (codec: CodecKind, level: Int32?) {
        let typeName = self["compress-type"] ?? "zstd"
        guard let codec = CodecKind(setting: typeName) else {
            throw .invalidValue(name: "compress-type", value: typeName, expected: "zstd, gzip or none")
        }
        guard let l = try integer("compress-level") else { return (codec, nil) }
        guard codec.levels.contains(Int32(l)) else {
            throw .invalidValue(name: "compress-level", value: String(l), expected: "\(codec.levels) for \(codec.rawValue)")
        }
        return (codec, Int32(l))
    }

    /// Every setting with its value and source, secrets masked.
    public func describe() -> [(name: String, value: String, source: String)] {
        Settings.all.compactMap { d in
            guard let v = values[d.name] else { return nil }
            return (d.name, d.secret ? "********" : v, sources[d.name] ?? "default")
        }
    }
}
