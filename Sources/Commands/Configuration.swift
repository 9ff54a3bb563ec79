import Foundation
import Codec
import FastPath

/// One setting walctl knows: its name in the config file, its environment variable, its type and
/// default. Built from the typed table (`Setting`, in FastPath so the fast front validates alike).
public struct SettingDefinition: Sendable {
    public var key: Setting
    public var name: String { key.name }
    public var defaultValue: String? { key.defaultValue }
    public var help: String { key.help }
    public var type: SettingType { key.type }
    /// Secrets are never printed (`walctl config`, errors, `--help`).
    public var secret: Bool { key.secret }
    /// `WALCTL_` + the name in upper case with `-` as `_`: `s3-endpoint` -> `WALCTL_S3_ENDPOINT`.
    public var environmentName: String { key.environmentName }
}

/// The typed keys and value types (defined in FastPath, used under these names everywhere).
public typealias Setting = FastPath.Setting
public typealias SettingType = FastPath.SettingType

/// Every setting, in one table (documented in docs/configuration.md and config/walctl.conf).
public enum Settings {
    public static let all: [SettingDefinition] = Setting.allCases.map { SettingDefinition(key: $0) }
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
    /// `source`: where the value came from (`FILE line N`, `WALCTL_X`, `--x`), when known.
    case invalidValue(name: String, value: String, expected: String, source: String? = nil)
    case missing(name: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): return "cannot read config file \(p): \(r)"
        case .syntax(let p, let l, let t): return "\(p) line \(l): expected `name = value` (a quoted value needs its closing quote), found \"\(t)\""
        case .unknownSetting(let n, let s): return "unknown setting '\(n)' in \(s) (see `walctl help` or docs/configuration.md)"
        case .invalidValue(let n, let v, let e, let s):
            let shown = Settings.definition(n)?.secret == true ? "********" : v
            return "setting \(n) = \"\(shown)\"\(s.map { " (from \($0))" } ?? "") is invalid: expected \(e)"
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
    /// `flagSources` names where each flag came from (`--set NAME`, `--repository`); `--NAME` when absent.
    public static func load(flags: [String: String], environment: [String: String], configPath: String?,
                            flagSources: [String: String] = [:]) throws(ConfigurationError) -> Configuration {
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
            guard Settings.definition(k) != nil else { throw .unknownSetting(name: k, source: flagSources[k] ?? "command line") }
            c.values[k] = v
            c.sources[k] = flagSources[k] ?? "--" + k
        }
        try c.validate()
        return c
    }

    /// Checks every value against its setting's type, then the rules between settings
    /// (`Setting.crossCheck`): the first bad value is refused with its name, the allowed values and
    /// where it came from. `load` calls it, so every command refuses a bad configuration.
    public func validate() throws(ConfigurationError) {
        for key in Setting.allCases {
            guard let v = self[key] else { continue }
            if !key.type.accepts(v) {
                throw .invalidValue(name: key.name, value: v, expected: key.type.allowed, source: sources[key.name])
            }
        }
        if let p = Setting.crossCheck({ self[$0] }) {
            throw .invalidValue(name: p.setting.name, value: p.value, expected: p.expected, source: sources[p.setting.name])
        }
    }

    /// A config file that is absent is "no such file" (an error only when named); one that exists,
    /// or may exist behind a directory this user cannot search, and cannot be read is an error
    /// either way, named "permission denied": never silently read as if there were no file.
    static func readConfigFile(_ path: String, required: Bool) throws(ConfigurationError) -> String? {
        func reason(_ e: Int32) -> String {
            e == EACCES || e == EPERM ? "permission denied (run walctl as a user that can read it and search its directories, e.g. runuser -u postgres --)" : String(cString: strerror(e))
        }
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR {
                if required { throw .unreadable(path: path, reason: "no such file") }
                return nil
            }
            throw .unreadable(path: path, reason: reason(e))
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .unreadable(path: path, reason: reason(errno)) }
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

    /// Parses `name = value` lines; `#` at the start of a line, or after a blank inside a value,
    /// starts a comment (`configValue`: `repository = file:///x   # my repo`); a value in double
    /// quotes is taken as written; `[section]` headers are ignored.
    public mutating func apply(fileText: String, path: String) throws(ConfigurationError) {
        for (i, raw) in fileText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || (line.hasPrefix("[") && line.hasSuffix("]")) { continue }
            guard let eq = line.firstIndex(of: "=") else { throw .syntax(path: path, line: i + 1, text: line) }
            let name = line[..<eq].trimmingCharacters(in: .whitespaces)
            guard let parsed = configValue(Array(line[line.index(after: eq)...].utf8)) else { throw .syntax(path: path, line: i + 1, text: line) }
            let value = String(decoding: parsed, as: UTF8.self)
            guard Settings.definition(name) != nil else { throw .unknownSetting(name: name, source: "\(path) line \(i + 1)") }
            values[name] = value
            sources[name] = "\(path) line \(i + 1)"
        }
    }

    /// By name: for the typed accessors and `describe` only. Code names a setting by its `Setting`
    /// key, so a misspelt name does not compile.
    subscript(_ name: String) -> String? {
        guard let v = values[name], !v.isEmpty else { return nil }
        return v
    }

    // MARK: typed access (values were validated by `load`)

    /// The value, nil when unset or empty.
    public subscript(_ key: Setting) -> String? { self[key.name] }

    /// An integer, seconds or bytes setting: nil when unset. Throws only for a configuration that
    /// did not come through `load` (tests, hand-built).
    public func int(_ key: Setting) throws(ConfigurationError) -> Int? {
        guard let v = self[key] else { return nil }
        guard key.type.accepts(v), let i = SettingType.parseInteger(v) else {
            throw .invalidValue(name: key.name, value: v, expected: key.type.allowed, source: sources[key.name])
        }
        return Int(i)
    }

    /// A seconds setting as a TimeInterval.
    public func seconds(_ key: Setting) throws(ConfigurationError) -> TimeInterval? {
        try int(key).map { TimeInterval($0) }
    }

    /// A boolean setting: false when unset.
    public func bool(_ key: Setting) throws(ConfigurationError) -> Bool {
        guard let v = self[key] else { return false }
        guard let b = SettingType.parseBool(v) else {
            throw .invalidValue(name: key.name, value: v, expected: key.type.allowed, source: sources[key.name])
        }
        return b
    }

    /// The log level (`log-level`, default warning).
    public var logLevel: String { self[.logLevel].map { $0.lowercased() } ?? "warning" }

    /// The value of a setting that must be set.
    public func require(_ key: Setting) throws(ConfigurationError) -> String {
        guard let v = self[key] else { throw .missing(name: key.name) }
        return v
    }

    func integer(_ name: String) throws(ConfigurationError) -> Int? {
        if let key = Setting(rawValue: name) { return try int(key) }
        guard let v = self[name] else { return nil }
        guard let i = Int(v), i >= 0 else { throw .invalidValue(name: name, value: v, expected: "a non-negative integer", source: sources[name]) }
        return i
    }

    func bool(_ name: String) throws(ConfigurationError) -> Bool {
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
