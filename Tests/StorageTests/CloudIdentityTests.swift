import Foundation
import Testing
@testable import Storage

/// The STS/KMS endpoint rule, the credentials chain's order, the cache and its expiry rule, the STS and
/// KMS wire formats, KMS-wrapped repository keys. No server: the sources that would send a request
/// are pointed at a closed loopback port or given a file that does not exist.
@Suite struct CloudIdentityTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "walctl-cloud-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return d
    }

    @Test func endpointRule() throws {
        #expect(try AWSEndpoints.url(service: "sts", region: "eu-west-1", environment: [:]) == "https://sts.eu-west-1.amazonaws.com")
        #expect(try AWSEndpoints.url(service: "kms", region: "us-east-2", environment: [:]) == "https://kms.us-east-2.amazonaws.com")
        let env = ["AWS_ENDPOINT_URL": "https://gateway.example:8443/", "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:4566"]
        #expect(try AWSEndpoints.url(service: "kms", region: "x", environment: env) == "http://127.0.0.1:4566")
        #expect(try AWSEndpoints.url(service: "sts", region: "x", environment: env) == "https://gateway.example:8443")
        #expect(try AWSEndpoints.url(service: "sts", region: "x", environment: ["AWS_ENDPOINT_URL_STS": ""]) == "https://sts.x.amazonaws.com")
        // Plain http only to a loopback host; other forms refused naming the variable.
        #expect(throws: StoreError.self) { try AWSEndpoints.url(service: "sts", region: "x", environment: ["AWS_ENDPOINT_URL_STS": "http://10.0.0.1:80"]) }
        #expect(throws: StoreError.self) { try AWSEndpoints.url(service: "kms", region: "x", environment: ["AWS_ENDPOINT_URL": "ftp://h"]) }
        #expect(throws: StoreError.self) { try AWSEndpoints.url(service: "kms", region: "x", environment: ["AWS_ENDPOINT_URL": "http://user@127.0.0.1"]) }
        #expect(try AWSEndpoints.url(service: "kms", region: "x", environment: ["AWS_ENDPOINT_URL": "http://[::1]:9"]) == "http://[::1]:9")
    }

    @Test func chainOrder() throws {
        let dir = try tempDir()
        let tokenFile = dir + "/token"
        try "tok".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let all: [String: String] = [
            "AWS_SHARED_CREDENTIALS_FILE": dir + "/none", "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
        ]
        // Static sources come first, in their old order.
        let p1 = AWSCredentialProvider(settings: S3Settings(key: "CFG", keySecret: "s"), environment: all.merging(["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e"]) { $1 }, cacheDirectory: nil)
        let r1 = try p1.resolve()
        #expect(r1.source == .settings && r1.credentials.accessKeyID == "CFG")
        let p2 = AWSCredentialProvider(settings: S3Settings(), environment: all.merging(["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e"]) { $1 }, cacheDirectory: nil)
        #expect(try p2.resolve().source == .environment)
        // Then web identity, container, instance metadata.
        var tried: [String] = []
        let p3 = AWSCredentialProvider(settings: S3Settings(), environment: all, cacheDirectory: nil)
        #expect(p3.temporarySources(tried: &tried).map(\.source) == [.webIdentity, .container, .instanceMetadata])
        var env = all
        env["AWS_EC2_METADATA_DISABLED"] = "TRUE"
        env["AWS_ROLE_ARN"] = nil
        tried = []
        #expect(AWSCredentialProvider(settings: S3Settings(), environment: env, cacheDirectory: nil).temporarySources(tried: &tried).map(\.source) == [.container])
        #expect(tried.count == 2)
        // The first temporary source that applies is the one used: its failure is reported, naming it.
        do {
            _ = try p3.resolve()
            Issue.record("resolved with an unreachable STS")
        } catch {
            guard case .credentials(let source, let message) = error else { Issue.record("\(error)"); return }
            #expect(source == "web-identity (role arn:aws:iam::1:role/r)" && message.contains("STS http://127.0.0.1:9 unreachable"))
        }
        // Nothing at all: one error listing what to set.
        let none = AWSCredentialProvider(settings: S3Settings(), environment: ["AWS_SHARED_CREDENTIALS_FILE": dir + "/none", "AWS_EC2_METADATA_DISABLED": "true"], cacheDirectory: nil)
        #expect(throws: StoreError.credentials(source: "chain", message: "no AWS credentials found: set s3-key and s3-key-secret, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile (s3-profile / AWS_PROFILE) in \(dir)/none, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or container credentials; instance metadata disabled by AWS_EC2_METADATA_DISABLED")) {
            try none.resolve()
        }
    }

    @Test func containerURIRules() throws {
        func url(_ env: [String: String]) throws(StoreError) -> String { try ContainerSource(environment: env).url() }
        #expect(try url(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/creds/x", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://a"]) == "http://169.254.170.2/v2/creds/x")
        #expect(try url(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"]) == "http://169.254.170.23/v1/credentials")
        #expect(try url(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://[fd00:ec2::23]/v1/credentials"]) == "http://[fd00:ec2::23]/v1/credentials")
        #expect(try url(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://localhost:8080/c"]) == "http://localhost:8080/c")
        #expect(try url(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://creds.example/c"]) == "https://creds.example/c")
        #expect(throws: StoreError.self) { try url(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://192.0.2.1/c"]) }
        #expect(throws: StoreError.self) { try url(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "file:///etc/passwd"]) }
        #expect(throws: StoreError.self) { try ContainerSource(environment: ["AWS_CONTAINER_AUTHORIZATION_TOKEN": "a\r\nX-Injected: 1"]).authorization() }
    }

    @Test func refreshRule() {
        let exp = Date(timeIntervalSince1970: 1_000_000)
        #expect(!AWSCredentialProvider.needsRefresh(expiration: exp, now: exp.addingTimeInterval(-301)))
        #expect(AWSCredentialProvider.needsRefresh(expiration: exp, now: exp.addingTimeInterval(-300)))
        #expect(AWSCredentialProvider.needsRefresh(expiration: exp, now: exp.addingTimeInterval(10)))
    }

    @Test func cacheFile() throws {
        let dir = try tempDir() + "/credentials"
        let cache = CredentialCache(directory: dir)
        let t = TemporaryCredentials(credentials: S3Credentials(accessKeyID: "ASIA1", secretAccessKey: "sec", sessionToken: "tok"),
                                     expiration: Date(timeIntervalSince1970: 2_000_000_000), role: "arn:r")
        cache.store(key: "web-identity arn:r /t", source: .webIdentity, t)
        let path = cache.path(key: "web-identity arn:r /t")
        var st = stat()
        #expect(lstat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(cache.load(key: "web-identity arn:r /t", source: .webIdentity) == t)
        #expect(cache.load(key: "web-identity arn:r /t", source: .container) == nil)
        #expect(cache.load(key: "web-identity arn:other /t", source: .webIdentity) == nil)
        chmod(path, 0o640)
        #expect(cache.load(key: "web-identity arn:r /t", source: .webIdentity) == nil)
        // A symlink is not followed; the next store replaces the link, not its target.
        unlink(path)
        let target = dir + "/../target"
        try "keep".write(toFile: target, atomically: true, encoding: .utf8)
        symlink(target, path)
        #expect(cache.load(key: "web-identity arn:r /t", source: .webIdentity) == nil)
        cache.store(key: "web-identity arn:r /t", source: .webIdentity, t)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep")
        #expect(lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG)
        try "{garbage".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(cache.load(key: "web-identity arn:r /t", source: .webIdentity) == nil)
    }

    @Test func providerUsesFreshCacheAndRefetchesDueOnes() throws {
        let base = try tempDir()
        let env = ["AWS_SHARED_CREDENTIALS_FILE": base + "/none", "AWS_WEB_IDENTITY_TOKEN_FILE": base + "/missing-token",
                   "AWS_ROLE_ARN": "arn:r", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9", "AWS_EC2_METADATA_DISABLED": "true"]
        let p = AWSCredentialProvider(settings: S3Settings(), environment: env, cacheDirectory: base + "/c")
        var tried: [String] = []
        let key = p.temporarySources(tried: &tried)[0].cacheKey
        let now = Date()
        let fresh = TemporaryCredentials(credentials: S3Credentials(accessKeyID: "ASIAFRESH", secretAccessKey: "s", sessionToken: "t"),
                                         expiration: now.addingTimeInterval(3600), role: "arn:r")
        CredentialCache(directory: base + "/c").store(key: key, source: .webIdentity, fresh)
        let r = try p.resolve()
        #expect(r.fromCache && r.credentials.accessKeyID == "ASIAFRESH" && r.source == .webIdentity)
        #expect(r.summary.hasPrefix("web-identity (role arn:r, cached, valid until ") && !r.summary.contains("ASIAFRESH"))
        // Inside the 5-minute margin: fetched again (here: the token file is missing, so it fails naming it).
        var due = fresh
        due.expiration = now.addingTimeInterval(200)
        CredentialCache(directory: base + "/c").store(key: key, source: .webIdentity, due)
        let q = AWSCredentialProvider(settings: S3Settings(), environment: env, cacheDirectory: base + "/c")
        #expect(throws: StoreError.credentials(source: "web-identity (role arn:r)", message: "AWS_WEB_IDENTITY_TOKEN_FILE \(base)/missing-token does not exist")) {
            try q.resolve()
        }
    }

    @Test func stsAnswer() throws {
        let ok = """
            <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
            <Credentials><AccessKeyId>ASIAXX</AccessKeyId><SecretAccessKey>sec/ret+</SecretAccessKey><SessionToken>tok==</SessionToken>
            <Expiration>2026-11-30T20:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>
            """
        let t = try WebIdentitySource.parse(Array(ok.utf8), status: 200, source: "s", roleARN: "arn:r")
        #expect(t.credentials == S3Credentials(accessKeyID: "ASIAXX", secretAccessKey: "sec/ret+", sessionToken: "tok=="))
        #expect(t.expiration == AWSTime.parse("2026-11-30T20:00:00Z") && t.role == "arn:r")
        let err = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>expired</Message></Error></ErrorResponse>"
        #expect(throws: StoreError.credentials(source: "s", message: "STS AssumeRoleWithWebIdentity answered 400 InvalidIdentityToken: expired")) {
            try WebIdentitySource.parse(Array(err.utf8), status: 400, source: "s", roleARN: "arn:r")
        }
        let w = WebIdentitySource(tokenFile: "/t", roleARN: "arn:aws:iam::1:role/a b", sessionName: nil, region: "r", environment: [:], caFile: nil)
        #expect(w.requestBody(token: "x.y+z", sessionName: "s") == "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b&RoleSessionName=s&WebIdentityToken=x.y%2Bz")
        #expect(AWSTime.parse("2026-11-30T20:00:00.123Z") != nil && AWSTime.parse("2026-11-30T20:00:00+00:00") != nil)
        // The container / IMDS document.
        let doc = #"{"Code":"Success","AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2026-11-30T20:00:00Z"}"#
        #expect(try CredentialsDocument.decode(Array(doc.utf8), source: "c", role: "r").credentials.sessionToken == "T")
        #expect(throws: StoreError.self) { try CredentialsDocument.decode(Array(#"{"Code":"Failed"}"#.utf8), source: "c", role: nil) }
    }

    @Test func kmsRequestAndAnswer() throws {
        let creds = S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "SESSION")
        let r = KMSClient.request(operation: "GenerateDataKey", body: ["KeyId": "alias/walctl", "KeySpec": "AES_256"],
                                  endpoint: "http://127.0.0.1:5000", region: "eu-west-1", credentials: creds, date: Date(timeIntervalSince1970: 1_440_938_160))
        #expect(r.url == "http://127.0.0.1:5000/")
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"KeyId":"alias/walctl","KeySpec":"AES_256"}"#)
        let h = Dictionary(r.headers.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        #expect(h["x-amz-target"] == "TrentService.GenerateDataKey" && h["content-type"] == "application/x-amz-json-1.1")
        #expect(h["host"] == "127.0.0.1:5000" && h["x-amz-date"] == "20150830T123600Z" && h["x-amz-security-token"] == "SESSION")
        let auth = h["authorization"] ?? ""
        #expect(auth.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/kms/aws4_request,SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,Signature="))
        // The signature is SigV4 over exactly these headers and body.
        let signed = SigV4(credentials: creds, region: "eu-west-1", service: "kms").sign(
            method: "POST", canonicalURI: "/", query: [], headers: r.headers.filter { $0.0 != "authorization" },
            payloadHash: r.body.withUnsafeBytes { Digest.sha256Hex($0) }, amzDate: "20150830T123600Z")
        #expect(auth == signed.authorization)
        #expect(KMSClient.request(operation: "Decrypt", body: [:], endpoint: "https://kms.eu-west-1.amazonaws.com", region: "eu-west-1",
                                  credentials: creds, date: Date()).headers.first { $0.0 == "host" }?.1 == "kms.eu-west-1.amazonaws.com")

        let key = [UInt8](repeating: 7, count: 32)
        let answer = #"{"CiphertextBlob":"\#(Data([1, 2, 3]).base64EncodedString())","Plaintext":"\#(Data(key).base64EncodedString())","KeyId":"arn:aws:kms:eu-west-1:1:key/k"}"#
        let a = try KMSClient.parse(status: 200, body: Array(answer.utf8), operation: "GenerateDataKey", keyID: "alias/walctl")
        #expect(a == KMSClient.Answer(plaintext: key, ciphertextBlob: [1, 2, 3], keyID: "arn:aws:kms:eu-west-1:1:key/k"))
        let denied = #"{"__type":"com.amazonaws.kms#AccessDeniedException","message":"not allowed"}"#
        #expect(throws: CipherError.key("AWS KMS Decrypt with key alias/walctl refused: 400 AccessDeniedException: not allowed")) {
            try KMSClient.parse(status: 400, body: Array(denied.utf8), operation: "Decrypt", keyID: "alias/walctl")
        }
        #expect(throws: CipherError.self) { try KMSClient.parse(status: 200, body: Array(#"{"Plaintext":"%%%"}"#.utf8), operation: "Decrypt", keyID: "k") }
    }

    @Test func kmsWrappedRepositoryKey() throws {
        let dataKey = [UInt8](repeating: 0x42, count: 32)
        let wrapping = RepositoryEncryption.KMSWrapping(keyId: "alias/a", keyArn: "arn:aws:kms:r:1:key/a", ciphertextBlob: Data([9, 9, 9]).base64EncodedString())
        let env = try RepositoryEncryption.create(kmsDataKey: dataKey, wrapping: wrapping)
        #expect(env.kdf == nil && env.wrappedKey == nil && env.kms == wrapping)
        let cache = KeyCache(directory: try tempDir() + "/keys")
        var calls = 0
        let decrypt: ([UInt8]) throws -> [UInt8] = { blob in calls += 1; #expect(blob == [9, 9, 9]); return dataKey }
        #expect(try env.unlock(kmsKey: "alias/a", repository: "r", cache: cache, decrypt: decrypt) == dataKey)
        #expect(try env.unlock(kmsKey: "alias/a", repository: "r", cache: cache, decrypt: decrypt) == dataKey)
        #expect(calls == 1)  // the second open came from the key cache
        // Another configured key is not served from the cache: KMS is asked (and refuses it).
        #expect(throws: CipherError.self) {
            try env.unlock(kmsKey: "alias/b", repository: "r", cache: cache) { _ in throw CipherError.key("AccessDeniedException") }
        }
        // KMS answering another key: the key check value refuses it.
        #expect(throws: CipherError.self) { try env.unlock(kmsKey: "alias/a", repository: "r", decrypt: { _ in [UInt8](repeating: 1, count: 32) }) }
        // Mismatches: a passphrase for a KMS repository, a KMS key for a passphrase repository.
        #expect(throws: CipherError.self) { try env.unlock(passphrase: Array("p".utf8), repository: "r") }
        let (pass, _) = try RepositoryEncryption.create(passphrase: Array("p".utf8))
        #expect(throws: CipherError.self) { try pass.unlock(kmsKey: "alias/a", repository: "r", decrypt: { _ in dataKey }) }
        // Re-wrapping to a passphrase and back keeps the data key (the check value).
        let back = try env.rewrapped(dataKey: dataKey, newPassphrase: Array("p2".utf8))
        let unwrapped = try back.unlock(passphrase: Array("p2".utf8), repository: "r")
        #expect(back.kms == nil && back.keyCheck == env.keyCheck && unwrapped == dataKey)
        #expect(back.rewrapped(kms: wrapping).fingerprint == env.fingerprint)
        // The binding's JSON keeps the passphrase format unchanged (no kms key) and has no kdf for KMS.
        let json = String(decoding: try JSONEncoder().encode(env), as: UTF8.self)
        #expect(json.contains("\"kms\"") && !json.contains("\"kdf\"") && !json.contains("wrappedKey"))
        #expect(!String(decoding: try JSONEncoder().encode(pass), as: UTF8.self).contains("\"kms\""))
    }
}
