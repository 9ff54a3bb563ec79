import Foundation

/// AWS credentials of one store. The secret and the session token are never printed: `description`,
/// `debugDescription` and reflection (`dump`) show only the access key id.
public struct S3Credentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String {
        "S3Credentials(accessKeyID: \(accessKeyID), secret: <redacted>\(sessionToken == nil ? "" : ", token: <redacted>"))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["accessKeyID": accessKeyID, "secretAccessKey": "<redacted>"]) }

    /// Finds credentials with the whole chain (`AWSCredentialProvider`, without a cache).
    public static func resolve(settings: S3Settings, environment: [String: String]) throws(StoreError) -> S3Credentials {
        try AWSCredentialProvider(settings: settings, environment: environment, cacheDirectory: nil).resolve().credentials
    }

    /// Reads `[profile]` from an INI credentials file. Returns nil when not `required` and absent.
    static func fromProfile(_ profile: String, file: String, required: Bool) throws(StoreError) -> S3Credentials? {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            if required { throw .configuration("S3 profile \(profile): cannot read credentials file \(file)") }
            return nil
        }
        let values = parseINI(text)[profile]
        guard let values else {
            if required { throw .configuration("S3 profile \(profile) not found in \(file)") }
            return nil
        }
        guard let key = values["aws_access_key_id"], !key.isEmpty,
              let secret = values["aws_secret_access_key"], !secret.isEmpty else {
            throw .configuration("S3 profile \(profile) in \(file) lacks aws_access_key_id or aws_secret_access_key")
        }
        let token = values["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token)
    }

    /// Sections and `key = value` pairs; `#` and `;` start comment lines; section names may be written
    /// `[name]` or `[profile name]`.
    static func parseINI(_ text: String) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        var section: String?
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                var name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = String(name.dropFirst(8)).trimmingCharacters(in: .whitespaces) }
                section = name
                if out[name] == nil { out[name] = [:] }
            } else if let section, let eq = line.firstIndex(of: "=") {
                let k = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
                let v = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                out[section]?[k] = v
            }
        }
        return out
    }
}
