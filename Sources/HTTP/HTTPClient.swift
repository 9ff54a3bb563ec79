import CCurl
import Foundation

/// One HTTP/1.1 request: method, absolute URL, headers (sent in this order) and an optional body.
///
/// The module knows nothing about S3: signing and retries live in the caller.
public struct HTTPRequest {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: HTTPBody?

    public init(method: String, url: String, headers: [(name: String, value: String)] = [], body: HTTPBody? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// A request body streamed to the server through libcurl's read callback.
///
/// `read` fills the buffer and returns the byte count (0 at the end); `rewind` restarts from the first
/// byte, which libcurl asks for when it resends a request on a fresh connection.
public struct HTTPBody {
    public var length: Int64
    public var read: (UnsafeMutableRawBufferPointer) -> Int
    public var rewind: () -> Bool

    public init(length: Int64, read: @escaping (UnsafeMutableRawBufferPointer) -> Int, rewind: @escaping () -> Bool) {
        self.length = length
        self.read = read
        self.rewind = rewind
    }

    /// A body read from memory the caller keeps alive for the whole `perform` call.
    public static func bytes(_ bytes: UnsafeRawBufferPointer) -> HTTPBody {
        final class Cursor { var offset = 0 }
        let c = Cursor()
        return HTTPBody(length: Int64(bytes.count), read: { dst in
            let n = min(dst.count, bytes.count - c.offset)
            if n > 0, let src = bytes.baseAddress, let d = dst.baseAddress {
                d.copyMemory(from: src + c.offset, byteCount: n)
                c.offset += n
            }
            return n
        }, rewind: { c.offset = 0; return true })
    }
}

/// Status line and headers of a response, known before its body arrives.
public struct HTTPResponseHead {
    public var status: Int
    /// Header fields in arrival order, names as the server spelled them.
    public var headers: [(name: String, value: String)]

    public init(status: Int, headers: [(name: String, value: String)]) {
        self.status = status
        self.headers = headers
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// A complete response. `body` holds the bytes only when no streaming sink took them.
public struct HTTPResponse {
    public var head: HTTPResponseHead
    public var body: [UInt8]
    /// Bytes handed to a streaming sink.
    public var streamedBytes: Int64
    public var status: Int { head.status }
    public func header(_ name: String) -> String? { head.header(name) }
}

/// Why a request got no complete answer. Never contains request headers (which may hold credentials).
public enum HTTPError: Error, CustomStringConvertible {
    /// libcurl failed: connect, TLS, reset, timeout, short body. `code` is the `CURLcode`.
    case transport(code: Int, message: String)
    /// The caller's body sink or head callback threw; the transfer was stopped.
    case aborted(any Error)
    /// libcurl could not be set up (out of memory, bad option, unsupported URL scheme).
    case setup(String)

    /// True for failures where the same request may succeed when sent again.
    public var isTransient: Bool {
        guard case .transport(let code, _) = self else { return false }
        switch code {
        case Int(CURLE_COULDNT_CONNECT.rawValue), Int(CURLE_COULDNT_RESOLVE_HOST.rawValue),
             Int(CURLE_OPERATION_TIMEDOUT.rawValue), Int(CURLE_SEND_ERROR.rawValue),
             Int(CURLE_RECV_ERROR.rawValue), Int(CURLE_GOT_NOTHING.rawValue),
             Int(CURLE_PARTIAL_FILE.rawValue), Int(CURLE_SSL_CONNECT_ERROR.rawValue),
             Int(CURLE_HTTP2.rawValue), Int(CURLE_HTTP2_STREAM.rawValue),
             Int(CURLE_SEND_FAIL_REWIND.rawValue), Int(CURLE_WEIRD_SERVER_REPLY.rawValue):
            return true
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .transport(let code, let message): return "\(message) (curl error \(code))"
        case .aborted(let e): return "transfer stopped: \(e)"
        case .setup(let m): return m
        }
    }
}

/// Connection and TLS settings of an `HTTPClient`.
public struct HTTPOptions: Sendable, Equatable {
    /// Seconds to establish a TCP (and TLS) connection.
    public var connectTimeout: Double
    /// A transfer slower than 1 byte/s for this many seconds is cut as a timeout (a stalled server).
    public var stallTimeout: Int
    /// Upper bound for one whole request in seconds; 0 means none (large bodies take long).
    public var requestTimeout: Double
    /// CA bundle to verify servers with, instead of the system store.
    public var caFile: String?
    /// Verify the server's certificate and host name. On by default; only tests turn it off.
    public var verifyTLS: Bool

    public init(connectTimeout: Double = 10, stallTimeout: Int = 30, requestTimeout: Double = 0,
                caFile: String? = nil, verifyTLS: Bool = true) {
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.requestTimeout = requestTimeout
        self.caFile = caFile
        self.verifyTLS = verifyTLS
    }
}

/// libcurl's process-wide initialisation, run once before the first handle.
private let curlGlobalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

/// A libcurl easy handle reused across requests, so a process keeps one connection (and TLS session)
/// to the server. Not thread-safe: use one client per thread (the S3 store keeps a pool).
///
/// Only `http://` and `https://` URLs are accepted; redirects are not followed.
public final class HTTPClient {
    private let handle: UnsafeMutableRawPointer
    public let options: HTTPOptions
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    /// Creates a handle. Throws `.setup` when libcurl cannot be initialised.
    public init(options: HTTPOptions = HTTPOptions()) throws(HTTPError) {
        guard curlGlobalInit == CURLE_OK else {
            // libcurl is loaded on first use (CLazyLoad): say which library is missing, if one is.
            throw .setup(walctl_curl_load_error().map { String(cString: $0) } ?? "curl_global_init failed")
        }
        guard let h = curl_easy_init() else { throw .setup("curl_easy_init failed") }
        handle = h
        self.options = options
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Sends `request` and waits for the whole response.
    ///
    /// - Parameter receive: called once the status line and headers are in, before any body byte.
    ///   Return a sink to stream the body to it (the response's `body` stays empty), or nil to collect
    ///   the body in memory (error documents, listings). An error thrown by it or by the sink stops the
    ///   transfer and comes back as `.aborted`.
    public func perform(_ request: HTTPRequest,
                        receive: ((HTTPResponseHead) throws -> ((UnsafeRawBufferPointer) throws -> Void)?)? = nil)
        throws(HTTPError) -> HTTPResponse
    {
        let ctx = TransferContext(body: request.body, receive: receive)
        curl_easy_reset(handle)  // keeps the connection cache
        errorBuffer[0] = 0
        var slist: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(slist) }

        var failed: CURLcode = CURLE_OK
        func set(_ r: CURLcode) { if r != CURLE_OK && failed == CURLE_OK { failed = r } }
        let h = handle
        set(walctl_curl_setopt_string(h, CURLOPT_URL, request.url))
        set(walctl_curl_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(walctl_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1))
        set(walctl_curl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0))
        set(walctl_curl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1))
        set(walctl_curl_setopt_long(h, CURLOPT_TCP_NODELAY, 1))
        set(walctl_curl_setopt_pointer(h, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer)))
        set(walctl_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeout * 1000)))
        set(walctl_curl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1))
        set(walctl_curl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, max(1, options.stallTimeout)))
        if options.requestTimeout > 0 {
            set(walctl_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(options.requestTimeout * 1000)))
        }
        set(walctl_curl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0))
        set(walctl_curl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0))
        if let ca = options.caFile { set(walctl_curl_setopt_string(h, CURLOPT_CAINFO, ca)) }

        let opaque = Unmanaged.passUnretained(ctx).toOpaque()
        set(walctl_curl_setopt_write(h, curlWriteCallback))
        set(walctl_curl_setopt_pointer(h, CURLOPT_WRITEDATA, opaque))
        set(walctl_curl_setopt_header(h, curlHeaderCallback))
        set(walctl_curl_setopt_pointer(h, CURLOPT_HEADERDATA, opaque))

        switch request.method {
        case "GET":
            set(walctl_curl_setopt_long(h, CURLOPT_HTTPGET, 1))
        case "HEAD":
            set(walctl_curl_setopt_long(h, CURLOPT_NOBODY, 1))
        case "PUT":
            set(walctl_curl_setopt_long(h, CURLOPT_UPLOAD, 1))
            set(walctl_curl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body?.length ?? 0)))
        case "POST":
            set(walctl_curl_setopt_long(h, CURLOPT_POST, 1))
            set(walctl_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body?.length ?? 0)))
        default:
            set(walctl_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method))
        }
        if request.method == "PUT" || request.method == "POST" {
            set(walctl_curl_setopt_read(h, curlReadCallback))
            set(walctl_curl_setopt_pointer(h, CURLOPT_READDATA, opaque))
            // CURLOPT_SEEKFUNCTION has no typed setter in the shim; a C function pointer and a data
            // pointer have the same representation on every platform Swift and libcurl support.
            set(walctl_curl_setopt_pointer(h, CURLOPT_SEEKFUNCTION, unsafeBitCast(curlSeekCallback, to: UnsafeMutableRawPointer.self)))
            set(walctl_curl_setopt_pointer(h, CURLOPT_SEEKDATA, opaque))
        }

        for (name, value) in request.headers {
            slist = curl_slist_append(slist, "\(name): \(value)")
        }
        slist = curl_slist_append(slist, "Expect:")  // no 100-continue round trip
        if request.method == "PUT" || request.method == "POST" {
            slist = curl_slist_append(slist, "Transfer-Encoding:")
        }
        set(walctl_curl_setopt_slist(h, CURLOPT_HTTPHEADER, slist))
        if failed != CURLE_OK {
            throw .setup("curl option rejected: \(String(cString: curl_easy_strerror(failed)))")
        }

        let rc = withExtendedLifetime(ctx) { curl_easy_perform(h) }
        if let e = ctx.callerError { throw .aborted(e) }
        if rc != CURLE_OK {
            let detail = String(cString: errorBuffer)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(rc)) : detail
            throw .transport(code: Int(rc.rawValue), message: text)
        }
        var status = 0
        _ = walctl_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        var head = ctx.head ?? HTTPResponseHead(status: status, headers: ctx.headers)
        head.status = status
        return HTTPResponse(head: head, body: ctx.collected, streamedBytes: ctx.streamed)
    }
}

/// Per-transfer state shared with the C callbacks.
private final class TransferContext {
    let body: HTTPBody?
    let receive: ((HTTPResponseHead) throws -> ((UnsafeRawBufferPointer) throws -> Void)?)?
    var headers: [(name: String, value: String)] = []
    var status = 0
    var head: HTTPResponseHead?
    var sink: ((UnsafeRawBufferPointer) throws -> Void)?
    var collected: [UInt8] = []
    var streamed: Int64 = 0
    var callerError: (any Error)?

    init(body: HTTPBody?, receive: ((HTTPResponseHead) throws -> ((UnsafeRawBufferPointer) throws -> Void)?)?) {
        self.body = body
        self.receive = receive
    }

    /// Called at the blank line ending a header block. Interim (1xx) blocks are skipped.
    func headersComplete() -> Bool {
        if status < 200 { headers = []; return true }
        let h = HTTPResponseHead(status: status, headers: headers)
        head = h
        if let receive {
            do { sink = try receive(h) } catch { callerError = error; return false }
        }
        return true
    }

    func deliver(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if let sink {
            do { try sink(bytes) } catch { callerError = error; return false }
            streamed += Int64(bytes.count)
        } else {
            collected.append(contentsOf: bytes)
        }
        return true
    }
}

private let curlWriteCallback: curl_write_callback = { ptr, size, count, userdata in
    guard let userdata else { return 0 }
    let ctx = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard n > 0, let ptr else { return n }
    if ctx.head == nil && !ctx.headersComplete() { return 0 }
    return ctx.deliver(UnsafeRawBufferPointer(start: ptr, count: n)) ? n : 0
}

private let curlHeaderCallback: curl_write_callback = { ptr, size, count, userdata in
    guard let userdata else { return 0 }
    let ctx = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard let ptr, n > 0 else { return n }
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    if line.hasPrefix("HTTP/") {
        ctx.headers = []
        ctx.head = nil
        let parts = line.split(separator: " ", maxSplits: 2)
        ctx.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    } else if line.isEmpty {
        if !ctx.headersComplete() { return 0 }
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
        let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        ctx.headers.append((name, value))
    }
    return n
}

private let curlReadCallback: curl_read_callback = { ptr, size, count, userdata in
    guard let userdata, let ptr else { return 0 }
    let ctx = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
    guard let body = ctx.body else { return 0 }
    return body.read(UnsafeMutableRawBufferPointer(start: ptr, count: size * count))
}

private let curlSeekCallback: @convention(c) (UnsafeMutableRawPointer?, curl_off_t, Int32) -> Int32 = { userdata, offset, origin in
    guard let userdata else { return Int32(CURL_SEEKFUNC_FAIL) }
    let ctx = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
    guard offset == 0, origin == SEEK_SET, let body = ctx.body, body.rewind() else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    return Int32(CURL_SEEKFUNC_OK)
}
