import Foundation

/// One version (or delete marker) of an object in a versioned bucket.
public struct ObjectVersion: Equatable, Sendable {
    public var key: String
    public var versionId: String
    public var isDeleteMarker: Bool
    public var modified: Date?
    public init(key: String, versionId: String, isDeleteMarker: Bool = false, modified: Date? = nil) {
        self.key = key; self.versionId = versionId; self.isDeleteMarker = isDeleteMarker; self.modified = modified
    }
}

/// An optional capability of a store whose objects carry S3 Object Lock retention
/// (`s3-object-lock-mode`): the bucket is versioned, so a plain delete only hides an object behind
/// a delete marker and frees nothing. `walctl expire` deletes the versions themselves; a version
/// still under retention is refused by the server (AccessDenied) and stays.
public protocol VersionedDeleting {
    /// `s3-object-lock-days` when the store writes Object Lock retention, nil otherwise (then the
    /// store's plain deletes are used).
    var retentionDays: Int? { get }
    /// Every version and delete marker under `prefix` (ListObjectVersions), by key then newest first.
    func listVersions(prefix: String) throws(StoreError) -> [ObjectVersion]
    /// Deletes `versions` (at most 1000) in one DeleteObjects request; returns those the server refused.
    func deleteVersions(_ versions: [ObjectVersion]) throws(StoreError) -> [(version: ObjectVersion, error: StoreError)]
    /// The retain-until date of one version (GetObjectRetention), nil when it has none.
    func retainUntil(_ version: ObjectVersion) throws(StoreError) -> Date?
}

extension S3Store: VersionedDeleting {
    public var retentionDays: Int? { settings.objectLockMode == nil ? nil : settings.objectLockDays }

    public func listVersions(prefix keyPrefix: String) throws(StoreError) -> [ObjectVersion] {
        var out: [ObjectVersion] = []
        let full = objectKey(keyPrefix)
        var keyMarker: String?, versionMarker: String?
        for _ in 0..<1_000_000 {
            var query = [("versions", ""), ("prefix", full)]
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let versionMarker { query.append(("version-id-marker", versionMarker)) }
            let r = try send(Call(method: "GET", key: nil, query: query), displayKey: full)
            guard r.status == 200 else { throw httpError(r, key: full) }
            let xml = String(decoding: r.body, as: UTF8.self)[...]
            for (tag, marker) in [("Version", false), ("DeleteMarker", true)] {
                for e in S3XML.blocks(xml, tag) {
                    guard let k = S3XML.value(e, "Key"), k.hasPrefix(prefix), let v = S3XML.value(e, "VersionId") else { continue }
                    out.append(ObjectVersion(key: String(k.dropFirst(prefix.count)), versionId: v, isDeleteMarker: marker,
                                             modified: S3XML.value(e, "LastModified").flatMap(Self.parseTime)))
                }
            }
            guard S3XML.value(xml, "IsTruncated") == "true" else { break }
            let nk = S3XML.value(xml, "NextKeyMarker"), nv = S3XML.value(xml, "NextVersionIdMarker")
            guard let nk, !nk.isEmpty, (nk, nv) != (keyMarker ?? "", versionMarker) else {
                throw .http(status: r.status, code: "BadResponse", message: "truncated version listing without a marker", bucket: bucket, key: full)
            }
            keyMarker = nk; versionMarker = nv
        }
        out.sort { ($0.key, $1.modified ?? .distantPast) < ($1.key, $0.modified ?? .distantPast) }
        return out
    }

    public func deleteVersions(_ versions: [ObjectVersion]) throws(StoreError) -> [(version: ObjectVersion, error: StoreError)] {
        guard !versions.isEmpty else { return [] }
        let objects = versions.map { "<Object><Key>" + S3XML.escape(objectKey($0.key)) + "</Key><VersionId>" + S3XML.escape($0.versionId) + "</VersionId></Object>" }
        let text = try postDelete(objects, display: objectKey(versions[0].key) + (versions.count > 1 ? " (+\(versions.count - 1) more)" : ""))
        var byKey: [String: [ObjectVersion]] = [:]
        for v in versions { byKey[v.key, default: []].append(v) }
        var failed: [(version: ObjectVersion, error: StoreError)] = []
        for e in S3XML.blocks(text, "Error") {
            guard let full = S3XML.value(e, "Key") else { continue }
            let code = S3XML.value(e, "Code") ?? "InternalError"
            if code == "NoSuchKey" || code == "NoSuchVersion" { continue }
            let key = full.hasPrefix(prefix) ? String(full.dropFirst(prefix.count)) : full
            let vid = S3XML.value(e, "VersionId")
            // moto names the key only; then every version of that key sent is the refused one.
            let matches = (byKey[key] ?? []).filter { vid == nil || $0.versionId == vid }
            let status = code == "AccessDenied" || code == "ObjectLocked" ? 403 : 500
            let err = StoreError.http(status: status, code: code, message: S3XML.value(e, "Message") ?? "", bucket: bucket, key: full)
            for v in matches.isEmpty ? [ObjectVersion(key: key, versionId: vid ?? "")] : matches { failed.append((v, err)) }
        }
        return failed
    }

    public func retainUntil(_ version: ObjectVersion) throws(StoreError) -> Date? {
        let full = objectKey(version.key)
        let r = try send(Call(method: "GET", key: full, query: [("retention", ""), ("versionId", version.versionId)]), displayKey: full)
        if r.status == 404 || r.status == 400 { return nil }
        guard r.status == 200 else { throw httpError(r, key: full) }
        return S3XML.value(String(decoding: r.body, as: UTF8.self)[...], "RetainUntilDate").flatMap(Self.parseTime)
    }
}
