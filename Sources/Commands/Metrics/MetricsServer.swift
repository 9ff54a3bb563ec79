import Foundation
import Glibc

/// Where `walctl metrics --listen` listens: `PORT` (on 127.0.0.1), `HOST:PORT` with an IPv4 address
/// or `localhost`, or `[IPv6]:PORT`.
public struct MetricsListenAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var isIPv6: Bool

    public init?(_ text: String) {
        var host = "127.0.0.1", portText = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(close, offsetBy: 2)...])
            isIPv6 = true
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            isIPv6 = false
        } else {
            isIPv6 = false
        }
        if host == "localhost" { host = "127.0.0.1" }
        guard let port = UInt16(portText), port > 0 else { return nil }
        self.host = host
        self.port = port
        guard Self.parse(host, ipv6: isIPv6) != nil else { return nil }
    }

    static func parse(_ host: String, ipv6: Bool) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: ipv6 ? 16 : 4)
        let ok = bytes.withUnsafeMutableBytes { inet_pton(ipv6 ? AF_INET6 : AF_INET, host, $0.baseAddress) }
        return ok == 1 ? bytes : nil
    }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        guard let b = Self.parse(host, ipv6: isIPv6) else { return false }
        return isIPv6 ? b == [UInt8](repeating: 0, count: 15) + [1] : b[0] == 127
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A tiny blocking HTTP/1.1 server for `walctl metrics --listen`: one connection at a time (a
/// Prometheus scrape every few seconds needs no more), `GET /metrics` answered with a freshly
/// generated exposition, then the connection is closed. A client gets 5 s to send its request head
/// (at most 8 KiB); a slow one cannot hold the server longer than that.
public final class MetricsServer {
    public let address: MetricsListenAddress
    private let fd: Int32

    /// Binds and listens. Throws `.refused` naming the address and the system's reason.
    public init(address: MetricsListenAddress) throws(WalctlError) {
        self.address = address
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw .refused("cannot listen on \(address): socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bytes = MetricsListenAddress.parse(address.host, ipv6: address.isIPv6) ?? []
        var rc: Int32
        if address.isIPv6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: bytes) }
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: bytes) }
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        if rc == 0 { rc = listen(s, 16) }
        if rc != 0 {
            let e = errno
            close(s)
            throw .refused("cannot listen on \(address): \(String(cString: strerror(e)))")
        }
        fd = s
    }

    deinit { close(fd) }

    /// The response to one request head (the request line and headers, without the body).
    public static func respond(to head: String, metrics: () -> String) -> (status: String, contentType: String, body: String) {
        let requestLine = head.split(separator: "\r\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/") else { return ("400 Bad Request", "text/plain; charset=utf-8", "bad request\n") }
        let path = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard parts[0] == "GET" || parts[0] == "HEAD" else { return ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n") }
        switch path {
        case "/metrics": return ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics())
        case "/": return ("200 OK", "text/plain; charset=utf-8", "walctl metrics: see /metrics\n")
        default: return ("404 Not Found", "text/plain; charset=utf-8", "not found: try /metrics\n")
        }
    }

    /// Serves until the process is stopped (SIGTERM / SIGINT end it; a client that goes away never does).
    public func serve(metrics: () -> String) -> Never {
        signal(SIGPIPE, SIG_IGN)
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE { if errno != EINTR { usleep(100_000) } }; continue }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            handle(c, metrics: metrics)
            close(c)
        }
    }

    private func handle(_ c: Int32, metrics: () -> String) {
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while head.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            head += buffer[0..<n]
            if head.count >= 4, (0...(head.count - 4)).contains(where: { Array(head[$0..<($0 + 4)]) == end }) { break }
        }
        let text = String(decoding: head, as: UTF8.self)
        let isHead = text.hasPrefix("HEAD ")
        let r = Self.respond(to: text, metrics: metrics)
        let body = Array(r.body.utf8)
        var out = Array("HTTP/1.1 \(r.status)\r\nContent-Type: \(r.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        if !isHead { out += body }
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            sent += n
        }
    }
}
