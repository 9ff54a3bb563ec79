import Foundation
import Storage

/// `walctl config`: every setting with its value (secrets masked) and source, and which source of
/// the AWS credentials chain supplies the credentials (never their values).
public enum ConfigReport {
    /// The credentials line: nil when nothing in the configuration uses AWS (a file repository
    /// without `repository-cipher-kms-key`).
    public struct Credentials: Encodable, Sendable {
        /// `settings`, `profile`, `environment`, `web-identity`, `container`, `instance-metadata`;
        /// nil when no source gave credentials (`error` says why).
        public var source: String?
        /// The profile and file, the role, the container URI.
        public var detail: String?
        /// Expiry of temporary credentials.
        public var expiresAt: Date?
        /// True when they came from the cache (no request was sent).
        public var cached: Bool
        /// `[code] message` when the chain found nothing or a source failed.
        public var error: String?
        /// The human line: `web-identity (role arn:..., cached, valid until ...)`.
        public var summary: String
    }

    /// `walctl config --json` (docs/json.md).
    public struct Document: Encodable, Sendable {
        public var formatVersion = 1
        public var configFile: String?
        public var settings: [Entry]
        public var credentials: Credentials?
    }

    public struct Entry: Encodable, Sendable {
        public var name: String
        /// The value as printed (a secret is masked).
        public var value: String
        public var source: String
    }

    public static func credentials(_ config: Configuration) -> Credentials? {
        let repo = config[.repository] ?? ""
        guard repo.hasPrefix("s3://") || config[.repositoryCipherKMSKey] != nil else { return nil }
        let failure: WalctlError
        do {
            let r = try credentialProvider(config).resolve()
            return Credentials(source: r.source.rawValue, detail: r.detail, expiresAt: r.expiration, cached: r.fromCache, error: nil, summary: r.summary)
        } catch let e as StoreError {
            failure = .store(e)
        } catch let e as WalctlError {
            failure = e
        } catch {
            failure = .refused("\(error)")
        }
        let line = "[\(failure.code)] \(failure.description)"
        return Credentials(source: nil, detail: nil, expiresAt: nil, cached: false, error: line, summary: "none: " + line)
    }

    public static func document(_ config: Configuration) -> Document {
        Document(configFile: config.configFile, settings: config.describe().map { Entry(name: $0.name, value: $0.value, source: $0.source) },
                 credentials: credentials(config))
    }
}
