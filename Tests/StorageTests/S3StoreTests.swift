import Foundation
import Testing
@testable import Storage

/// Settings, credentials and URL handling: no server needed.
@Suite struct S3SettingsTests {
    @Test func urlAndPrefix() throws {
        let s = S3Settings(endpoint: "http://127.0.0.1:9", uriStyle: .path, key: "AK", keySecret: "SECRETVALUE")
        let a = try S3Store.make(url: "s3://my-bucket/a/b/", settings: s, environment: [:])
        #expect(a.bucket == "my-bucket" && a.prefix == "a/b/" && a.location == "s3://my-bucket/a/b")
        #expect(a.objectKey("wal/x") == "a/b/wal/x")
        let b = try S3Store.make(url: "s3://my-bucket", settings: s, environment: [:])
        #expect(b.prefix == "" && b.location == "s3://my-bucket")
        #expect(throws: StoreError.self) { try S3Store.make(url: "file:///x", settings: s, environment: [:]) }
        #expect(throws: StoreError.self) { try S3Store.make(url: "s3://UPPER/x", settings: s, environment: [:]) }
        let host = try S3Store.make(url: "s3://my-bucket", settings: S3Settings(region: "eu-west-1", key: "AK", keySecret: "S"), environment: [:])
        #expect(host.scheme == "https" && host.hostHeader == "my-bucket.s3.eu-west-1.amazonaws.com")
        let bad = S3Settings(endpoint: "ftp://x", key: "AK", keySecret: "S")
        #expect(throws: StoreError.self) { try S3Store.make(url: "s3://my-bucket", settings: bad, environment: [:]) }
    }

    @Test func secretsNeverPrinted() throws {
        let s = S3Settings(key: "AKIDPUBLIC", keySecret: "TOPSECRETVALUE", token: "TOKENVALUE")
        for text in [s.description, "\(s)", String(reflecting: s), { var o = ""; dump(s, to: &o); return o }()] {
            #expect(!text.contains("TOPSECRETVALUE") && !text.contains("TOKENVALUE"))
        }
        let c = S3Credentials(accessKeyID: "AKIDPUBLIC", secretAccessKey: "TOPSECRETVALUE", sessionToken: "TOKENVALUE")
        for text in ["\(c)", String(reflecting: c), { var o = ""; dump(c, to: &o); return o }()] {
            #expect(!text.contains("TOPSECRETVALUE") && !text.contains("TOKENVALUE") && text.contains("AKIDPUBLIC"))
        }
    }

    @Test func credentialOrder() throws {
        let dir = NSTemporaryDirectory() + "walctl-creds-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/credentials"
        try """
        # comment
        [default]
        aws_access_key_id = DEFAULTKEY
        aws_secret_access_key = defaultsecret

        [profile archive]
        aws_access_key_id=ARCHIVEKEY
        aws_secret_access_key=archivesecret
        aws_session_token = archivetoken
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let env = ["AWS_SHARED_CREDENTIALS_FILE": file]
        // 1. settings win.
        var s = S3Settings(key: "CFGKEY", keySecret: "cfgsecret")
        #expect(try S3Credentials.resolve(settings: s, environment: env.merging(["AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "e"]) { $1 }).accessKeyID == "CFGKEY")
        // 2. s3-profile.
        s = S3Settings(profile: "archive")
        let p = try S3Credentials.resolve(settings: s, environment: env.merging(["AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "e"]) { $1 })
        #expect(p.accessKeyID == "ARCHIVEKEY" && p.sessionToken == "archivetoken")
        // 3. environment.
        s = S3Settings()
        let e = try S3Credentials.resolve(settings: s, environment: env.merging(["AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "e", "AWS_SESSION_TOKEN": "t"]) { $1 })
        #expect(e.accessKeyID == "ENVKEY" && e.sessionToken == "t")
        // 4. AWS_PROFILE, then default.
        #expect(try S3Credentials.resolve(settings: s, environment: env.merging(["AWS_PROFILE": "archive"]) { $1 }).accessKeyID == "ARCHIVEKEY")
        #expect(try S3Credentials.resolve(settings: s, environment: env).accessKeyID == "DEFAULTKEY")
        // Errors name the problem, never a secret.
        #expect(throws: StoreError.self) { try S3Credentials.resolve(settings: S3Settings(profile: "nope"), environment: env) }
        #expect(throws: StoreError.self) { try S3Credentials.resolve(settings: S3Settings(key: "K"), environment: [:]) }
        #expect(throws: StoreError.self) { try S3Credentials.resolve(settings: s, environment: ["AWS_SHARED_CREDENTIALS_FILE": dir + "/none", "AWS_EC2_METADATA_DISABLED": "true"]) }
    }

    @Test func xml() {
        let x = "<R><Contents><Key>a&amp;b&#x2F;c</Key><Size>3</Size></Contents><Contents><Key>d</Key><Size>4</Size></Contents><KeyCount>2</KeyCount></R>"[...]
        #expect(S3XML.blocks(x, "Contents").count == 2)
        #expect(S3XML.values(x, "Key") == ["a&b/c", "d"])
        #expect(S3XML.value(x, "KeyCount") == "2")
        // ETags as headers and listings send them compare equal.
        #expect(ObjectInfo(key: "k", size: 1, etag: "\"9E107D9D372BB6826BD81D3542A419D6-3\"").etag == "9e107d9d372bb6826bd81d3542a419d6-3")
        #expect(ObjectInfo(key: "k", size: 1, etag: "W/\"abc\"") == ObjectInfo(key: "k", size: 1, etag: "abc"))
    }
}

/// The store against moto with signature checking on (see scripts/moto-server.py).
@Suite(.enabled(if: Moto.enabled)) struct S3StoreTests {
    @Test func putGetHeadListDelete() throws {
        let moto = try Moto.get()
        let store = try moto.store()
        let data = testBytes(100_000, seed: 1)
        try store.put(key: "wal/000000010000000000000001", bytes: data)
        #expect(try store.get(key: "wal/000000010000000000000001") == data)
        let head = try #require(try store.head(key: "wal/000000010000000000000001"))
        #expect(head.key == "wal/000000010000000000000001" && head.size == 100_000)
        // The ETag, without quotes, is the same in the head answer and in the listing, and changes
        // when the object is rewritten at the same size (what a chain restore proves objects by).
        let etag = try #require(head.etag)
        #expect(etag.count == 32 && !etag.contains("\""))
        #expect(try store.list(prefix: "wal/").first?.etag == etag)
        var flipped = data; flipped[50_000] ^= 0xFF
        try store.put(key: "wal/000000010000000000000001", bytes: flipped)
        #expect(try store.head(key: "wal/000000010000000000000001")?.etag != etag)
        try store.put(key: "wal/000000010000000000000001", bytes: data)
        #expect(try store.head(key: "wal/000000010000000000000001")?.etag == etag)
        try store.put(key: "wal/000000010000000000000002", bytes: [])
        #expect(try store.get(key: "wal/000000010000000000000002") == [])
        #expect(try store.list(prefix: "wal/").map(\.key) == ["wal/000000010000000000000001", "wal/000000010000000000000002"])
        try store.delete(key: "wal/000000010000000000000001")
        try store.delete(key: "wal/000000010000000000000001")  // missing: not an error
        #expect(try store.head(key: "wal/000000010000000000000001") == nil)
        #expect(try store.get(key: "wal/000000010000000000000001") == nil)
    }

    @Test func missingKeyIsNotFound() throws {
        let store = try Moto.get().store()
        #expect(throws: StoreError.notFound(key: "nope/x")) { try store.read(key: "nope/x") { _ in } }
        #expect(try store.head(key: "nope/x") == nil)
    }

    @Test func oddKeysAndSlashPrefixes() throws {
        let store = try Moto.get().store()
        let keys = ["odd/a+b", "odd/50%", "odd/sp ace", "odd/ünï", "odd/x=y&z", "odd/t~il.de"]
        for (i, k) in keys.enumerated() { try store.put(key: k, bytes: Array("v\(i)".utf8)) }
        for (i, k) in keys.enumerated() { #expect(try store.get(key: k) == Array("v\(i)".utf8), "\(k)") }
        #expect(try store.list(prefix: "odd/").map(\.key) == keys.sorted())
        #expect(try store.list(prefix: "odd/a+").map(\.key) == ["odd/a+b"])
    }

    @Test func listContinuation() throws {
        let store = try Moto.get().store()
        store.listMaxKeys = 7
        let names = (0..<40).map { String(format: "seg/%08X", $0 * 37) }
        for n in names { try store.put(key: n, bytes: [1]) }
        try store.put(key: "other/x", bytes: [2])
        #expect(try store.list(prefix: "seg/").map(\.key) == names.sorted())
        #expect(try store.list(prefix: "").count == 41)
        #expect(try store.list(prefix: "seg/0000").count == names.filter { $0.hasPrefix("seg/0000") }.count)
    }

    @Test func ifAbsent() throws {
        let store = try Moto.get().store()
        try store.put(key: "h/1.history", bytes: [1, 2, 3], options: PutOptions(ifAbsent: true))
        #expect(throws: StoreError.alreadyExists(key: "h/1.history")) {
            try store.put(key: "h/1.history", bytes: [9], options: PutOptions(ifAbsent: true))
        }
        #expect(try store.get(key: "h/1.history") == [1, 2, 3])
        try store.put(key: "h/1.history", bytes: [4])
        #expect(try store.get(key: "h/1.history") == [4])
    }

    @Test func multipartParallel() throws {
        let moto = try Moto.get()
        let store = try moto.store { $0.partSize = 64 << 10; $0.uploadThreads = 3 }
        let data = testBytes((1 << 20) + 12345, seed: 2)
        try putStreaming(store, key: "base/big", bytes: data, chunk: 10_007)
        #expect(try store.get(key: "base/big") == data)
        #expect(try store.head(key: "base/big")?.size == Int64(data.count))
        let multipartETag = try #require(try store.head(key: "base/big")?.etag)
        #expect(multipartETag.hasSuffix("-17"))  // 1 MiB + 12345 bytes in 64 KiB parts
        #expect(try store.list(prefix: "base/big").first?.etag == multipartETag)
        #expect(try openUploads(store, key: "base/big").isEmpty)
        // Exactly one part size: one PUT, no multipart.
        let one = testBytes(64 << 10, seed: 3)
        try putStreaming(store, key: "base/one", bytes: one, chunk: 4096)
        #expect(try store.get(key: "base/one") == one)
        // ifAbsent on the completion.
        #expect(throws: StoreError.alreadyExists(key: "base/big")) {
            try putStreaming(store, key: "base/big", bytes: testBytes(200_000, seed: 4), chunk: 50_000, options: PutOptions(ifAbsent: true))
        }
        #expect(try store.get(key: "base/big") == data)
        #expect(try openUploads(store, key: "base/big").isEmpty)
    }

    @Test func abortCleansUp() throws {
        let store = try Moto.get().store { $0.partSize = 16 << 10 }
        let w = try store.makeWriter(key: "base/aborted", options: .init())
        let data = testBytes(100_000, seed: 5)
        try data.withUnsafeBytes { try w.write($0) }
        #expect(try openUploads(store, key: "base/aborted").count == 1)
        w.abort()
        w.abort()
        #expect(try openUploads(store, key: "base/aborted").isEmpty)
        #expect(try store.head(key: "base/aborted") == nil)
    }

    @Test func sseAndStorageClass() throws {
        let store = try Moto.get().store { $0.sse = "AES256"; $0.storageClass = "STANDARD_IA"; $0.partSize = 16 << 10 }
        try store.put(key: "enc/small", bytes: [1, 2, 3])
        let big = testBytes(40_000, seed: 11)
        try putStreaming(store, key: "enc/big", bytes: big, chunk: 40_000)
        #expect(try store.get(key: "enc/big") == big)
        let r = try store.send(S3Store.Call(method: "GET", key: nil, query: [("list-type", "2"), ("prefix", store.objectKey("enc/"))]), displayKey: "enc/")
        #expect(S3XML.values(String(decoding: r.body, as: UTF8.self)[...], "StorageClass") == ["STANDARD_IA", "STANDARD_IA"])
    }

    @Test func wrongSecretFailsFastWithoutTheSecret() throws {
        let moto = try Moto.get()
        let wrong = "WRONG" + String((moto.env["AWS_SECRET_ACCESS_KEY"] ?? "x").dropFirst(5))
        let store = try moto.store { $0.keySecret = wrong; $0.maxRetries = 5; $0.retryBaseDelay = 1 }
        let start = Date()
        var caught: StoreError?
        do { try store.put(key: "wal/x", bytes: [1]) } catch { caught = error }
        let e = try #require(caught)
        guard case .http(403, "SignatureDoesNotMatch", _, let bucket, let key) = e else {
            Issue.record("unexpected \(e)"); return
        }
        #expect(bucket == moto.bucket && key == store.objectKey("wal/x"))
        #expect(!e.isTransient)
        #expect(Date().timeIntervalSince(start) < 1, "4xx must not be retried")
        let text = "\(e) \(String(reflecting: e))"
        #expect(!text.contains(wrong) && !text.contains(moto.env["AWS_SECRET_ACCESS_KEY"] ?? "?"))
        #expect(text.contains(moto.bucket) && text.contains("wal/x"))
        #expect(throws: StoreError.self) { try store.read(key: "wal/x") { _ in } }
    }

    @Test func missingBucketIsAnErrorNotNotFound() throws {
        let moto = try Moto.get()
        let store = try S3Store.make(bucket: "no-such-bucket-walctl", prefix: "p", settings: moto.settings(), environment: [:])
        do {
            try store.read(key: "x") { _ in }
            Issue.record("read of a missing bucket succeeded")
        } catch let e as StoreError {
            if case .http(404, "NoSuchBucket", _, "no-such-bucket-walctl", _) = e {} else { Issue.record("unexpected \(e)") }
        }
    }

    /// The launcher's patch, proven with boto3: correct signatures pass (a key with `+` and `%`, a
    /// ListObjectsV2 prefix with `/`), a wrong secret gets 403 SignatureDoesNotMatch.
    @Test func launcherProvenWithBoto3() throws {
        let moto = try Moto.get()
        let (status, out) = try runProcess(["python3", "-"], environment: moto.env, input: boto3Proof, timeout: 60)
        #expect(status == 0 && out.contains("PROOF OK"), "\(out)")
    }
}

let boto3Proof = #"""
import os, sys, boto3, botocore
from botocore.config import Config
ep = os.environ["MOTO_ENDPOINT"]; b = os.environ["MOTO_BUCKET"]
def client(secret):
    return boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
s3 = client(os.environ["AWS_SECRET_ACCESS_KEY"])
for k in ["proof/a+b", "proof/50%/c d", "proof/x/y~z"]:
    s3.put_object(Bucket=b, Key=k, Body=b"hello")
    assert s3.get_object(Bucket=b, Key=k)["Body"].read() == b"hello", k
r = s3.list_objects_v2(Bucket=b, Prefix="proof/x/")
assert [o["Key"] for o in r["Contents"]] == ["proof/x/y~z"], r
bad = client("wrong" + os.environ["AWS_SECRET_ACCESS_KEY"][5:])
try:
    bad.get_object(Bucket=b, Key="proof/a+b")
    print("FAIL: wrong secret accepted"); sys.exit(1)
except botocore.exceptions.ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
    assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response
print("PROOF OK")
"""#
