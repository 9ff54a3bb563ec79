import Foundation

/// Where walctl sends STS and KMS requests: the one endpoint rule (AWS SDK convention, docs/encryption.md
/// and docs/operator-guide.md "S3 credentials").
///
/// 1. `AWS_ENDPOINT_URL_<SERVICE>` (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_KMS`);
/// 2. else `AWS_ENDPOINT_URL`;
/// 3. else the region's public endpoint, `https://<service>.<region>.amazonaws.com`.
///
/// An endpoint must be `https://`, or `http://` to a loopback host (a local emulator): a web identity
/// token or a KMS plaintext key never crosses a network unencrypted.
public enum AWSEndpoints {
    /// The endpoint URL (no trailing `/`) of `service` (`sts`, `kms`) in `region`.
    public static func url(service: String, region: String, environment: [String: String]) throws(StoreError) -> String {
        let specific = "AWS_ENDPOINT_URL_" + service.uppercased().replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "-", with: "_")
        let chosen: (value: String, from: String)
        if let v = environment[specific], !v.isEmpty {
            chosen = (v, specific)
        } else if let v = environment["AWS_ENDPOINT_URL"], !v.isEmpty {
            chosen = (v, "AWS_ENDPOINT_URL")
        } else {
            return "https://\(service.lowercased()).\(region).amazonaws.com"
        }
        var url = chosen.value
        while url.hasSuffix("/") { url.removeLast() }
        guard let host = hostOf(url) else {
            throw .configuration("\(chosen.from) must be https://host[:port] (or http:// to a loopback host): \(chosen.value)")
        }
        if url.lowercased().hasPrefix("http://") && !isLoopback(host) {
            throw .configuration("\(chosen.from) = \(chosen.value): http:// is allowed only to a loopback host (requests would cross the network unencrypted); use https://")
        }
        return url
    }

    /// The host of `http(s)://host[:port][/path]`, nil when the URL is not of that form.
    static func hostOf(_ url: String) -> String? {
        let lower = url.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") { rest = url.dropFirst(8) } else if lower.hasPrefix("http://") { rest = url.dropFirst(7) } else { return nil }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if authority.contains("@") { return nil }
        var host = String(authority)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            let port = host[host.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy(\.isNumber) else { return nil }
            host = String(host[..<colon])
        }
        return host.isEmpty ? nil : host.lowercased()
    }

    /// `localhost`, 127.0.0.0/8 and ::1.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
