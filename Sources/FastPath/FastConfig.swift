#if canImport(Glibc)
import Glibc
#endif

/// The settings walctl knows, by name: the typed table's names (`Setting`, shared with the full
/// binary). A config file naming anything else makes the front fall back, so the full binary reports
/// the error.
public let knownSettingNames: [String] = Setting.allCases.map(\.rawValue)

/// `WALCTL_` + the name in upper case with `-` as `_`, as `SettingDefinition.environmentName`.
public func environmentName(_ setting: String) -> String {
    "WALCTL_" + String(decoding: setting.utf8.map { c -> UInt8 in
        if c == 0x2D { return 0x5F }
        if c >= 0x61 && c <= 0x7A { return c - 32 }
        return c
    }, as: UTF8.self)
}

/// The configuration as the full binary resolves it (config file, then `WALCTL_*`, then `--set`),
/// for the few settings the fast paths read. Built only when every layer is unambiguous: anything the
/// full binary might treat differently or reject yields nil (fall back).
public struct FastConfig: Equatable {
    public var values: [String: String] = [:]

    /// The config file path as the full binary picks it when neither `--config` nor `WALCTL_CONFIG` names one.
    public static let defaultConfigPath = "/etc/walctl/walctl.conf"

    public init(values: [String: String] = [:]) { self.values = values }

    /// Resolves the layers. `configFlag` is `--config`, `sets` the `--set NAME=VALUE` words in order,
    /// `environment` a lookup of environment variables.
    public static func load(configFlag: String?, sets: [String], environment: (String) -> String?) -> FastConfig? {
        var c = FastConfig()
        let explicit = configFlag ?? environment("WALCTL_CONFIG")
        let path = explicit ?? defaultConfigPath
        var st = Glibc.stat()
        if stat(path, &st) == 0 {
            guard let bytes = FastFS.read(path, limit: 1 << 20, followSymlinks: true), c.apply(fileBytes: bytes) else { return nil }
        } else if explicit != nil || errno != ENOENT {
            return nil   // the full binary reports the missing or unreadable file
        }
        for name in knownSettingNames {
            if let v = environment(environmentName(name)) { c.values[name] = v }
        }
        for kv in sets {
            let u = Array(kv.utf8)
            guard let eq = u.firstIndex(of: 0x3D), eq > 0 else { return nil }
            let name = String(decoding: u[..<eq], as: UTF8.self)
            guard knownSettingNames.contains(name) else { return nil }
            c.values[name] = String(decoding: u[(eq + 1)...], as: UTF8.self)
        }
        // The full binary refuses a bad value (Configuration.validate): leave it to report it.
        guard c.isValid else { return nil }
        return c
    }

    /// Every value passes its setting's type and the rules between settings, as the full binary
    /// checks at load.
    public var isValid: Bool {
        for key in Setting.allCases {
            if let v = self[key.rawValue], !key.type.accepts(v) { return false }
        }
        return Setting.crossCheck({ self[$0.rawValue] }) == nil
    }

    /// Applies the file's `name = value` lines with `Configuration.apply(fileText:)`'s grammar; false
    /// for anything it would reject or that this reader might read differently (non-ASCII, control
    /// characters).
    public mutating func apply(fileBytes: [UInt8]) -> Bool {
        guard fileBytes.allSatisfy({ $0 == 0x0A || $0 == 0x09 || ($0 >= 0x20 && $0 < 0x7F) }) else { return false }
        for raw in fileBytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            let line = Self.trim(Array(raw))
            if line.isEmpty || line.first == 0x23 || line.first == 0x3B || (line.first == 0x5B && line.last == 0x5D) { continue }
            guard let eq = line.firstIndex(of: 0x3D) else { return false }
            let name = String(decoding: Self.trim(Array(line[..<eq])), as: UTF8.self)
            // Inline comments and quotes exactly as Configuration.apply (one function: configValue).
            guard let value = configValue(Array(line[(eq + 1)...])) else { return false }
            guard knownSettingNames.contains(name) else { return false }
            values[name] = String(decoding: value, as: UTF8.self)
        }
        return true
    }

    static func trim(_ b: [UInt8]) -> [UInt8] {
        var s = b[...]
        while let f = s.first, f == 0x20 || f == 0x09 { s = s.dropFirst() }
        while let l = s.last, l == 0x20 || l == 0x09 { s = s.dropLast() }
        return Array(s)
    }

    /// The value, nil when unset or empty (as `Configuration`'s subscript).
    public subscript(_ name: String) -> String? {
        guard let v = values[name], !v.isEmpty else { return nil }
        return v
    }

    /// How a setting reads as an integer: unset, a plain decimal, or something to leave to the full binary.
    public enum IntegerSetting: Equatable { case unset, value(Int), undecided }

    public func integer(_ name: String) -> IntegerSetting {
        guard let v = self[name] else { return .unset }
        let u = Array(v.utf8)
        guard u.count <= 18, u.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let i = Int(v) else { return .undecided }
        return .value(i)
    }

    /// `Configuration.bool`: nil when the value is not one the full binary accepts.
    public func bool(_ name: String) -> Bool? {
        guard let v = self[name] else { return false }
        switch String(decoding: v.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 }, as: UTF8.self) {
        case "true", "on", "yes", "1", "y": return true
        case "false", "off", "no", "0", "n": return false
        default: return nil
        }
    }
}
