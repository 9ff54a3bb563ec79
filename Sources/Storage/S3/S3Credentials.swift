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

    /// Finds credentials, first match wins:
    /// 1. `s3-key` + `s3-key-secret` (+ `s3-token`) from the settings;
    /// 2. the profile named by `s3-profile` in the shared credentials file;
    /// 3. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) from the environment;
    /// 4. the profile named by `AWS_PROFILE` (or `default`) in the shared credentials file
    ///    (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`).
    ///
    /// Errors name the setting or file that is wrong, never a secret.
    public static func resolve(settings: S3Settings, environment: [String: String]) throws(StoreError) -> S3Credentials {
        func nonEmpty(_ s: String?) -> String? { (s?.isEmpty ?? true) ? nil : s }
        if let key = nonEmpty(settings.key) {
            guard let secret = nonEmpty(settings.keySecret) else {
                throw .configuration("s3-key is set but s3-key-secret is missing")
            }
            return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: nonEmpty(settings.token))
        }
        if settings.keySecret != nil && settings.key == nil {
            throw .configuration("s3-key-secret is set but s3-key is missing")
        }
        let file = nonEmpty(environment["AWS_SHARED_CREDENTIALS_FILE"])
            ?? (nonEmpty(environment["HOME"]) ?? NSHomeDirectory()) + "/.aws/credentials"
        if let profile = nonEmpty(settings.profile) {
            return try fromProfile(profile, file: file, required: true)!
        }
        if let key = nonEmpty(environment["AWS_ACCESS_KEY_ID"]) {
            guard let secret = nonEmpty(environment["AWS_SECRET_ACCESS_KEY"]) else {
                throw .configuration("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is missing")
            }
            return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: nonEmpty(environment["AWS_SESSION_TOKEN"]))
        }
        let profile = nonEmpty(environment["AWS_PROFILE"])
        if let c = try fromProfile(profile ?? "default", file: file, required: profile != nil) { return c }
        throw .configuration("no S3 credentials: set s3-key and s3-key-secret, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            + "or a profile (s3-profile / AWS_PROFILE) in \(file)")
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
