import Foundation
import Testing
@testable import Commands

/// The exposition writer, the --listen address and the HTTP answers of `walctl metrics`.
@Suite struct MetricsTests {
    @Test func familiesAreDeclaredOnceAndGrouped() {
        var m = PrometheusText(commonLabels: [("repository", "s3://b/p")])
        m.add("walctl_a", help: "A.", labels: [("timeline", "1")], 1)
        m.add("walctl_b_total", .counter, help: "B.", 2)
        m.add("walctl_a", help: "A.", labels: [("timeline", "2")], 3)
        m.add("walctl_build_info", help: "Info.", labels: [("version", "1.0")], common: false, 1)
        #expect(m.text == """
            # HELP walctl_a A.
            # TYPE walctl_a gauge
            walctl_a{repository="s3://b/p",timeline="1"} 1
            walctl_a{repository="s3://b/p",timeline="2"} 3
            # HELP walctl_b_total B.
            # TYPE walctl_b_total counter
            walctl_b_total{repository="s3://b/p"} 2
            # HELP walctl_build_info Info.
            # TYPE walctl_build_info gauge
            walctl_build_info{version="1.0"} 1

            """)
    }

    @Test func valuesAndEscaping() {
        #expect(PrometheusText.format(0) == "0")
        #expect(PrometheusText.format(-3) == "-3")
        #expect(PrometheusText.format(0.25) == "0.25")
        #expect(PrometheusText.format(1796054717.568167) == "1796054717.568167")
        #expect(PrometheusText.format(1e20) == "1e+20")
        #expect(PrometheusText.format(.nan) == "NaN")
        #expect(PrometheusText.format(.infinity) == "+Inf")
        #expect(PrometheusText.format(-.infinity) == "-Inf")
        #expect(PrometheusText.escapeLabel("a\\b\"c\nd") == "a\\\\b\\\"c\\nd")
        #expect(PrometheusText.escapeHelp("x\\y\nz \"q\"") == "x\\\\y\\nz \"q\"")
    }

    @Test func listenAddresses() {
        #expect(MetricsListenAddress("9188") == MetricsListenAddress("127.0.0.1:9188"))
        #expect(MetricsListenAddress("9188")?.isLoopback == true)
        #expect(MetricsListenAddress("localhost:9188")?.host == "127.0.0.1")
        #expect(MetricsListenAddress("127.0.0.2:1")?.isLoopback == true)
        #expect(MetricsListenAddress("[::1]:9188")?.isLoopback == true)
        #expect(MetricsListenAddress("[::1]:9188")?.description == "[::1]:9188")
        #expect(MetricsListenAddress("0.0.0.0:9188")?.isLoopback == false)
        #expect(MetricsListenAddress("10.1.2.3:80")?.isLoopback == false)
        #expect(MetricsListenAddress("[::]:9188")?.isLoopback == false)
        for bad in ["", "0", "70000", "127.0.0.1:0", "127.0.0.1:", "example.com:80", "[::1]9188", "[::1", "1.2.3:80", "127.0.0.1:-1", ":9188x"] {
            #expect(MetricsListenAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func httpAnswers() {
        let body = "walctl_x 1\n"
        let ok = MetricsServer.respond(to: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") { body }
        #expect(ok.status == "200 OK" && ok.body == body && ok.contentType.hasPrefix("text/plain; version=0.0.4"))
        #expect(MetricsServer.respond(to: "GET /metrics?x=1 HTTP/1.0\r\n\r\n") { body }.status == "200 OK")
        #expect(MetricsServer.respond(to: "HEAD /metrics HTTP/1.1\r\n\r\n") { body }.status == "200 OK")
        #expect(MetricsServer.respond(to: "GET / HTTP/1.1\r\n\r\n") { body }.status == "200 OK")
        #expect(MetricsServer.respond(to: "GET /other HTTP/1.1\r\n\r\n") { body }.status == "404 Not Found")
        #expect(MetricsServer.respond(to: "POST /metrics HTTP/1.1\r\n\r\n") { body }.status == "405 Method Not Allowed")
        #expect(MetricsServer.respond(to: "garbage\r\n\r\n") { body }.status == "400 Bad Request")
        // Metrics are generated only for a metrics request.
        var generated = 0
        _ = MetricsServer.respond(to: "GET /nope HTTP/1.1\r\n\r\n") { generated += 1; return body }
        #expect(generated == 0)
    }
}
