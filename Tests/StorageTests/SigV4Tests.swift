import Foundation
import Testing
@testable import Storage

/// AWS Signature V4: the published test-suite vectors, the S3 API reference's worked examples, and
/// signatures botocore computes for the same S3 requests.
@Suite struct SigV4Tests {
    // The AWS SigV4 test suite (aws-sig-v4-test-suite): fixed key, region us-east-1, service "service".
    static let suite = SigV4(credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                             region: "us-east-1", service: "service")
    static let suiteDate = "20150830T123600Z"
    static let base = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]

    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var method: String
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var body = ""
        var stringToSignHash: String
        var signature: String
        var testDescription: String { name }
    }

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla", method: "GET",
               stringToSignHash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
               signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(name: "get-vanilla-query-order-key-case", method: "GET", query: [("Param2", "value2"), ("Param1", "value1")],
               stringToSignHash: "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
               signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "get-header-value-trim", method: "GET", headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
               stringToSignHash: "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
               signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
        Vector(name: "get-header-key-duplicate", method: "GET",
               headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
               stringToSignHash: "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
               signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
        Vector(name: "post-vanilla", method: "POST",
               stringToSignHash: "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
               signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "post-x-www-form-urlencoded", method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded")],
               body: "Param1=value1",
               stringToSignHash: "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
               signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
        Vector(name: "post-x-www-form-urlencoded-parameters", method: "POST",
               headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf8")], body: "Param1=value1",
               stringToSignHash: "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
               signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"),
        Vector(name: "post-sts-header-before", method: "POST",
               headers: [("X-Amz-Security-Token", "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==")],
               stringToSignHash: "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
               signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
    ]

    @Test(arguments: vectors) func awsTestSuite(_ v: Vector) {
        let signed = Self.suite.sign(method: v.method, canonicalURI: "/", query: v.query, headers: Self.base + v.headers,
                                     payloadHash: Digest.sha256Hex(v.body), amzDate: Self.suiteDate, separator: ", ")
        #expect(signed.stringToSign.hasSuffix(v.stringToSignHash), "\(signed.canonicalRequest)")
        #expect(signed.signature == v.signature)
        #expect(signed.authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders="))
    }

    // The S3 API reference's examples ("Signature Calculations for the Authorization Header: Transferring
    // Payload in a Single Chunk"): bucket examplebucket, 20130524T000000Z, us-east-1.
    static let s3 = SigV4(credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                          region: "us-east-1", service: "s3")

    func s3Headers(_ extra: [(String, String)], payload: String) -> [(String, String)] {
        [("host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", payload)] + extra
    }

    @Test func s3GetObjectWithRange() {
        let s = Self.s3.sign(method: "GET", canonicalURI: SigV4.encodePath("/test.txt"), query: [],
                             headers: s3Headers([("Range", "bytes=0-9")], payload: Digest.emptySHA256),
                             payloadHash: Digest.emptySHA256, amzDate: "20130524T000000Z")
        #expect(s.stringToSign.hasSuffix("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"))
        #expect(s.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(s.signedHeaders == "host;range;x-amz-content-sha256;x-amz-date")
    }

    @Test func s3PutObject() {
        let payload = Digest.sha256Hex("Welcome to Amazon S3.")
        #expect(payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let s = Self.s3.sign(method: "PUT", canonicalURI: SigV4.encodePath("/test$file.text"), query: [],
                             headers: s3Headers([("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")], payload: payload),
                             payloadHash: payload, amzDate: "20130524T000000Z")
        #expect(s.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n\n"))
        #expect(s.stringToSign.hasSuffix("9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"))
        #expect(s.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func s3GetBucketLifecycle() {
        let s = Self.s3.sign(method: "GET", canonicalURI: "/", query: [("lifecycle", "")],
                             headers: s3Headers([], payload: Digest.emptySHA256), payloadHash: Digest.emptySHA256, amzDate: "20130524T000000Z")
        #expect(s.stringToSign.hasSuffix("9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"))
        #expect(s.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func s3ListObjects() {
        let s = Self.s3.sign(method: "GET", canonicalURI: "/", query: [("prefix", "J"), ("max-keys", "2")],
                             headers: s3Headers([], payload: Digest.emptySHA256), payloadHash: Digest.emptySHA256, amzDate: "20130524T000000Z")
        #expect(s.stringToSign.hasSuffix("df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"))
        #expect(s.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func encodingAndDates() {
        #expect(SigV4.encode("a b+c%d/e~f_g.h-i", keepSlash: false) == "a%20b%2Bc%25d%2Fe~f_g.h-i")
        #expect(SigV4.encodePath("/b/ü k") == "/b/%C3%BC%20k")
        #expect(SigV4.amzDate(Date(timeIntervalSince1970: 1_440_938_160)) == "20150830T123600Z")
        #expect(SigV4.trimHeaderValue("  a   b  c ") == "a b c")
        #expect(Digest.sha256Hex("") == Digest.emptySHA256)
    }

    /// botocore's S3 client signs a set of requests (odd keys, a query with `/` and `+`, a session
    /// token, virtual-hosted style, SSE and storage-class headers) with fixed credentials and a fixed
    /// clock; our signer must produce the same signature from the same request.
    @Test(.enabled(if: requireExternal || botocoreAvailable)) func matchesBotocore() throws {
        let (status, out) = try runProcess(["python3", "-"], input: botocoreScript, timeout: 60)
        try #require(status == 0, "botocore script failed: \(out)")
        let cases = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
        try #require(cases.count >= 7)
        let creds = S3Credentials(accessKeyID: "AKIDWALCTLTEST", secretAccessKey: "walctl/secret+key=XYZ")
        for c in cases {
            let name = c["name"] as! String
            let method = c["method"] as! String
            let url = try #require(URLComponents(string: c["url"] as! String))
            let headers = c["headers"] as! [String: String]
            let auth = try #require(headers["Authorization"])
            let signedNames = auth.components(separatedBy: "SignedHeaders=")[1].components(separatedBy: ",")[0].split(separator: ";").map(String.init)
            let expected = auth.components(separatedBy: "Signature=")[1]
            var sign: [(String, String)] = []
            for n in signedNames {
                if n == "host" {
                    sign.append(("host", url.port.map { "\(url.host!):\($0)" } ?? url.host!))
                } else if let v = headers.first(where: { $0.key.lowercased() == n })?.value {
                    sign.append((n, v))
                }
            }
            // Decode botocore's query so our encoder does the encoding.
            let query = (url.percentEncodedQueryItems ?? []).map { ($0.name.removingPercentEncoding!, ($0.value ?? "").removingPercentEncoding!) }
            // Our path encoding of the decoded path must equal botocore's.
            let rawPath = url.percentEncodedPath
            #expect(SigV4.encodePath(rawPath.removingPercentEncoding!) == rawPath, "\(name)")
            let region = c["region"] as! String
            let signer = SigV4(credentials: creds, region: region, service: "s3")
            let s = signer.sign(method: method, canonicalURI: rawPath, query: query, headers: sign,
                                payloadHash: headers["X-Amz-Content-SHA256"]!, amzDate: headers["X-Amz-Date"]!)
            #expect(s.signature == expected, "\(name): \(s.canonicalRequest)")
        }
    }
}

let botocoreAvailable: Bool = (try? runProcess(["python3", "-c", "import botocore"], timeout: 30).0) == 0

/// Signs S3 requests with botocore (fixed key, fixed clock; sending is stopped in `before-send`)
/// and prints method, URL and headers of each as JSON.
let botocoreScript = #"""
import json, datetime, sys
import botocore.auth, botocore.session
from botocore.config import Config
botocore.auth.get_current_datetime = lambda *a, **k: datetime.datetime(2026, 1, 2, 3, 4, 5)
class Captured(Exception): pass
out = []
def run(name, endpoint, region, style, token, op, **params):
    s = botocore.session.get_session()
    c = s.create_client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id="AKIDWALCTLTEST",
        aws_secret_access_key="walctl/secret+key=XYZ", aws_session_token=token,
        config=Config(s3={"addressing_style": style}, retries={"max_attempts": 1},
                      request_checksum_calculation="when_required"))
    def grab(request, **kw):
        out.append({"name": name, "region": region, "method": request.method, "url": request.url,
                    "headers": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}})
        raise Captured()
    c.meta.events.register("before-send.s3", grab)
    try: getattr(c, op)(**params)
    except Captured: pass
run("get", "http://127.0.0.1:9000", "us-east-1", "path", None, "get_object", Bucket="walctl-test", Key="wal/0000000100000000000000A1.zst")
run("put-odd-key", "http://127.0.0.1:9000", "eu-central-1", "path", None, "put_object", Bucket="walctl-test", Key="dir/a+b c%d~e=f&g.txt", Body=b"hello")
run("list", "http://127.0.0.1:9000", "us-east-1", "path", None, "list_objects_v2", Bucket="walctl-test", Prefix="walctl/wal/00000001/", ContinuationToken="1/abc+def==", MaxKeys=7)
run("head-unicode", "https://s3.eu-central-1.amazonaws.com", "eu-central-1", "virtual", "FQoG/session+token==", "head_object", Bucket="walctl-test", Key="ünïcödé/κλειδί")
run("create-mpu", "https://s3.eu-central-1.amazonaws.com", "eu-central-1", "virtual", None, "create_multipart_upload", Bucket="walctl-test", Key="base/1.tar", ServerSideEncryption="AES256", StorageClass="STANDARD_IA")
run("upload-part", "http://127.0.0.1:9000", "us-east-1", "path", None, "upload_part", Bucket="walctl-test", Key="base/1.tar", PartNumber=3, UploadId="abc/def+ghi=", Body=b"x" * 1000)
run("delete", "http://127.0.0.1:9000", "us-east-1", "path", "tok", "delete_object", Bucket="walctl-test", Key="a/b")
json.dump(out, sys.stdout, indent=1)
"""#
