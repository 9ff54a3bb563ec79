import Foundation

/// A fault-injecting HTTP/1.1 proxy on 127.0.0.1 for tests of the S3 store: clients talk to
/// `http://127.0.0.1:<port>` and the proxy forwards each request to the upstream server (moto),
/// unless a fault is scheduled for it.
///
/// Faults are taken from a queue of rules (`inject`) first, then from an optional random mode
/// (`chaos`). Requests are forwarded unchanged, byte for byte, so SigV4 signatures stay valid
/// (the client signs the `Host` it talks to; moto checks the signature against that same header).
///
/// Bounded: every socket has a receive timeout, every thread ends when `stop()` is called or its
/// client goes away.
public final class FaultProxy: @unchecked Sendable {
    /// What happens to one request.
    public enum Fault: Sendable, Equatable, CustomStringConvertible {
        /// Forward and answer normally.
        case pass
        /// Answer with this status and S3 error code, without forwarding (e.g. 500 InternalError,
        /// 503 SlowDown).
        case status(Int, code: String)
        /// Forward (the server acts on the request) and then reset the client connection before
        /// any answer: the client cannot know whether it succeeded.
        case resetBeforeResponse
        /// Forward, send the headers and half of the body, then reset the connection (RST).
        case resetMidBody
        /// Forward, send the headers (full Content-Length) and half of the body, then close (FIN).
        case truncateBody
        /// Wait this many seconds, then forward and answer normally (a slow server).
        case delay(Double)

        public var description: String {
            switch self {
            case .pass: return "pass"
            case .status(let s, let c): return "\(s) \(c)"
            case .resetBeforeResponse: return "reset before response"
            case .resetMidBody: return "reset mid-body"
            case .truncateBody: return "truncated body"
            case .delay(let d): return "delay \(d)s"
            }
        }
    }

    /// One handled request, for assertions.
    public struct Event: Sendable {
        public var method: String
        public var target: String
        public var fault: Fault
    }

    /// The port the proxy listens on.
    public private(set) var port: UInt16 = 0
    public let upstreamPort: UInt16

    private let lock = NSLock()
    private var rules: [(method: String?, contains: String?, fault: Fault, remaining: Int)] = []
    private var chaosFaults: [Fault] = []
    private var chaosProbability = 0.0
    private var rng = SplitMix64(seed: 1)
    private var events: [Event] = []
    private var listener: Int32 = -1
    private var stopped = false
    private var clientSockets: Set<Int32> = []

    /// Starts listening on an ephemeral port of 127.0.0.1 and forwarding to `upstreamPort` there.
    public init(upstreamPort: UInt16) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProxyError.socket("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = FaultProxy.loopback(port: 0)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(fd, 64) == 0 else { close(fd); throw ProxyError.socket("bind/listen", errno) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = UInt16(bigEndian: bound.sin_port)
        listener = fd
        FaultProxy.setTimeout(fd, seconds: 0.2)
        let t = Thread { [weak self] in self?.acceptLoop() }
        t.start()
    }

    deinit { stop() }

    /// Schedules `fault` for the next `times` requests matching `method` (nil: any) and whose target
    /// (path and query) contains `pathContains` (nil: any).
    public func inject(_ fault: Fault, method: String? = nil, pathContains: String? = nil, times: Int = 1) {
        lock.lock(); defer { lock.unlock() }
        rules.append((method, pathContains, fault, times))
    }

    /// Random mode: each request not matched by a rule gets one of `faults` with `probability`.
    public func chaos(_ faults: [Fault], probability: Double, seed: UInt64) {
        lock.lock(); defer { lock.unlock() }
        chaosFaults = faults
        chaosProbability = probability
        rng = SplitMix64(seed: seed)
    }

    /// Drops pending rules and random mode.
    public func clearFaults() {
        lock.lock(); defer { lock.unlock() }
        rules = []
        chaosFaults = []
        chaosProbability = 0
    }

    /// The requests handled so far.
    public var handled: [Event] {
        lock.lock(); defer { lock.unlock() }
        return events
    }

    /// Stops accepting and closes every client connection.
    public func stop() {
        lock.lock()
        let wasStopped = stopped
        stopped = true
        let fd = listener
        listener = -1
        let clients = clientSockets
        lock.unlock()
        if wasStopped { return }
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
        for c in clients { shutdown(c, Int32(SHUT_RDWR)) }
    }

    // MARK: Internals

    enum ProxyError: Error { case socket(String, Int32) }

    private var isStopped: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopped
    }

    private func acceptLoop() {
        while !isStopped {
            lock.lock()
            let fd = listener
            lock.unlock()
            if fd < 0 { return }
            let c = accept(fd, nil, nil)
            if c < 0 { continue }  // timeout tick or shutdown
            FaultProxy.setTimeout(c, seconds: 30)
            lock.lock()
            clientSockets.insert(c)
            lock.unlock()
            let t = Thread { [weak self] in
                self?.serve(client: c)
                self?.forget(c)
                close(c)
            }
            t.start()
        }
    }

    private func forget(_ c: Int32) {
        lock.lock(); defer { lock.unlock() }
        clientSockets.remove(c)
    }

    private func decide(method: String, target: String) -> Fault {
        lock.lock(); defer { lock.unlock() }
        var fault = Fault.pass
        if let i = rules.firstIndex(where: { ($0.method == nil || $0.method == method) && ($0.contains.map { target.contains($0) } ?? true) }) {
            fault = rules[i].fault
            rules[i].remaining -= 1
            if rules[i].remaining <= 0 { rules.remove(at: i) }
        } else if !chaosFaults.isEmpty, Double(rng.next() % 1_000_000) / 1_000_000 < chaosProbability {
            fault = chaosFaults[Int(rng.next() % UInt64(chaosFaults.count))]
        }
        events.append(Event(method: method, target: target, fault: fault))
        return fault
    }

    /// Serves requests on one client connection until it closes or a fault ends it.
    private func serve(client: Int32) {
        var pending: [UInt8] = []
        for _ in 0..<100_000 {
            guard !isStopped, let (head, body) = FaultProxy.readMessage(client, &pending, isResponse: false, requestMethod: nil) else { return }
            let headText = String(decoding: head, as: UTF8.self)
            let requestLine = headText.prefix { $0 != "\r" }.split(separator: " ")
            guard requestLine.count >= 2 else { return }
            let method = String(requestLine[0])
            let target = String(requestLine[1])
            let fault = decide(method: method, target: target)

            switch fault {
            case .status(let s, let code):
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code><Message>injected by FaultProxy</Message></Error>"
                let bodyBytes = method == "HEAD" ? [] : Array(xml.utf8)
                let resp = "HTTP/1.1 \(s) Injected\r\nContent-Type: application/xml\r\nContent-Length: \(Array(xml.utf8).count)\r\n\r\n"
                guard FaultProxy.sendAll(client, Array(resp.utf8) + bodyBytes) else { return }
                continue
            case .delay(let d):
                Thread.sleep(forTimeInterval: d)
            default:
                break
            }

            guard let (respHead, respBody) = forward(head: head, body: body, method: method) else {
                FaultProxy.reset(client)
                return
            }
            switch fault {
            case .resetBeforeResponse:
                FaultProxy.reset(client)
                return
            case .resetMidBody:
                _ = FaultProxy.sendAll(client, respHead + Array(respBody.prefix(respBody.count / 2)))
                FaultProxy.reset(client)
                return
            case .truncateBody:
                _ = FaultProxy.sendAll(client, respHead + Array(respBody.prefix(respBody.count / 2)))
                shutdown(client, Int32(SHUT_WR))
                return
            default:
                guard FaultProxy.sendAll(client, respHead + respBody) else { return }
            }
        }
    }

    /// Sends one request upstream on a fresh connection; returns the response head (re-framed with
    /// Content-Length, keep-alive) and body.
    private func forward(head: [UInt8], body: [UInt8], method: String) -> ([UInt8], [UInt8])? {
        let up = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard up >= 0 else { return nil }
        defer { close(up) }
        FaultProxy.setTimeout(up, seconds: 60)
        var addr = FaultProxy.loopback(port: upstreamPort)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(up, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // Ask for a closed connection so an unframed answer ends; Connection is never signed.
        let upstreamHead = Array(head.dropLast(2)) + Array("Connection: close\r\n\r\n".utf8)
        guard rc == 0, FaultProxy.sendAll(up, upstreamHead + body) else { return nil }
        var pending: [UInt8] = []
        guard let (rHead, rBody) = FaultProxy.readMessage(up, &pending, isResponse: true, requestMethod: method) else { return nil }
        // Re-frame: the proxy always answers with Content-Length and keeps the client connection.
        let lines = String(decoding: rHead, as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
        guard let status = lines.first else { return nil }
        var out = [status]
        for l in lines.dropFirst() {
            let name = l.prefix { $0 != ":" }.lowercased()
            if name == "connection" || name == "transfer-encoding" || name == "keep-alive" { continue }
            if name == "content-length" && method != "HEAD" { continue }
            out.append(l)
        }
        if method != "HEAD" { out.append("Content-Length: \(rBody.count)") }
        return (Array((out.joined(separator: "\r\n") + "\r\n\r\n").utf8), rBody)
    }

    /// Reads one HTTP message (head including the blank line, and body). Bodies are framed by
    /// Content-Length, chunked encoding (decoded), or for responses the end of the connection.
    static func readMessage(_ fd: Int32, _ pending: inout [UInt8], isResponse: Bool, requestMethod: String?) -> ([UInt8], [UInt8])? {
        var headEnd: Int?
        for _ in 0..<100_000 {
            if let r = find(pending, [13, 10, 13, 10]) { headEnd = r + 4; break }
            guard recvSome(fd, &pending) else { return nil }
        }
        guard let headEnd else { return nil }
        let head = Array(pending[..<headEnd])
        pending.removeFirst(headEnd)
        let text = String(decoding: head, as: UTF8.self).lowercased()
        func header(_ n: String) -> String? {
            for l in text.components(separatedBy: "\r\n") where l.hasPrefix(n + ":") {
                return l.dropFirst(n.count + 1).trimmingCharacters(in: .whitespaces)
            }
            return nil
        }
        if isResponse {
            let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
            if requestMethod == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) { return (head, []) }
        }
        if let cl = header("content-length").flatMap({ Int($0) }) {
            while pending.count < cl { guard recvSome(fd, &pending) else { return nil } }
            let body = Array(pending[..<cl])
            pending.removeFirst(cl)
            return (head, body)
        }
        if header("transfer-encoding")?.contains("chunked") == true {
            var body: [UInt8] = []
            for _ in 0..<1_000_000 {
                var lineEnd = find(pending, [13, 10])
                while lineEnd == nil { guard recvSome(fd, &pending) else { return nil }; lineEnd = find(pending, [13, 10]) }
                let sizeText = String(decoding: pending[..<lineEnd!], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                pending.removeFirst(lineEnd! + 2)
                while pending.count < size + 2 { guard recvSome(fd, &pending) else { return nil } }
                body += pending[..<size]
                pending.removeFirst(size + 2)
                if size == 0 { return (head, body) }
            }
            return nil
        }
        if !isResponse { return (head, []) }
        while recvSome(fd, &pending) {}
        let body = pending
        pending = []
        return (head, body)
    }

    static func recvSome(_ fd: Int32, _ into: inout [UInt8]) -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        into += buf[..<n]
        return true
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }

    /// Closes with RST instead of FIN (SO_LINGER 0).
    static func reset(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        shutdown(fd, Int32(SHUT_RD))
    }

    static func setTimeout(_ fd: Int32, seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return a
    }
}

/// A small deterministic generator for reproducible fault schedules.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
