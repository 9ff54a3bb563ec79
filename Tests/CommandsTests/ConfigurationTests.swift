import Testing
@testable import Commands

@Suite struct ConfigurationTests {
    @Test func precedenceIsDefaultFileEnvironmentFlag() throws {
        var c = Configuration()
        #expect(c["compress-type"] == "zstd")
        try c.apply(fileText: "# comment\nrepository = file:///a\ncompress-type = gzip\n[global]\n", path: "f")
        #expect(c["repository"] == "file:///a")
        #expect(c.sources["repository"] == "f line 2")
        let loaded = try Configuration.load(flags: ["repository": "file:///flag"],
                                            environment: ["WALCTL_REPOSITORY": "file:///env", "WALCTL_COMPRESS_TYPE": "none",
                                                          "WALCTL_CONFIG": "/nonexistent/walctl.conf"],
                                            configPath: "/dev/null")
        #expect(loaded["repository"] == "file:///flag")
        #expect(loaded["compress-type"] == "none")
    }

    @Test func missingExplicitConfigIsAnError() {
        #expect(throws: ConfigurationError.self) {
            _ = try Configuration.load(flags: [:], environment: ["WALCTL_CONFIG": "/nonexistent/walctl.conf"], configPath: nil)
        }
    }

    @Test func unknownSettingsAreRefused() {
        var c = Configuration()
        #expect(throws: ConfigurationError.unknownSetting(name: "repositry", source: "f line 1")) {
            try c.apply(fileText: "repositry = x", path: "f")
        }
        #expect(throws: ConfigurationError.self) { try c.apply(fileText: "no equals sign", path: "f") }
        #expect(throws: ConfigurationError.self) {
            _ = try Configuration.load(flags: ["bogus": "1"], environment: [:], configPath: "/dev/null")
        }
    }

    @Test func environmentNames() {
        #expect(Settings.definition("s3-endpoint")?.environmentName == "WALCTL_S3_ENDPOINT")
        #expect(Settings.definition("archive-async")?.environmentName == "WALCTL_ARCHIVE_ASYNC")
    }

    @Test func secretsAreMasked() throws {
        let c = try Configuration.load(flags: ["s3-key-secret": "hunter2"], environment: [:], configPath: "/dev/null")
        #expect(!c.describe().contains { $0.value.contains("hunter2") })
    }

    @Test func typedValues() throws {
        var c = Configuration()
        try c.apply(fileText: "archive-async = on\narchive-workers = x", path: "f")
        #expect(try c.bool("archive-async"))
        #expect(throws: ConfigurationError.self) { _ = try c.integer("archive-workers") }
    }
}
