import Foundation
import Testing
@testable import Commands

/// What `walctl recover` writes into restore_command and its messages name: the front, never the
/// full binary the front handed the command to.
@Suite struct RecoverySettingsTests {
    func directory(with files: [String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-rs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in files {
            #expect(FileManager.default.createFile(atPath: dir + "/" + f, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755]))
        }
        return dir
    }

    @Test func theCoreNamesTheFrontBesideIt() throws {
        let dir = try directory(with: ["walctl", "walctl-core"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(RecoverySettingsWriter.frontBeside(dir + "/walctl-core") == dir + "/walctl")
        #expect(RecoverySettingsWriter.frontBeside(dir + "/walctl") == dir + "/walctl")
        // Any other name (a renamed or linked binary) is kept as it was started.
        #expect(RecoverySettingsWriter.frontBeside(dir + "/my-walctl") == dir + "/my-walctl")
    }

    @Test func theCoreAloneNamesItself() throws {
        let dir = try directory(with: ["walctl-core"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(RecoverySettingsWriter.frontBeside(dir + "/walctl-core") == dir + "/walctl-core")
        // A `walctl` that cannot be run is not a front.
        #expect(FileManager.default.createFile(atPath: dir + "/walctl", contents: Data(), attributes: [.posixPermissions: 0o644]))
        #expect(RecoverySettingsWriter.frontBeside(dir + "/walctl-core") == dir + "/walctl-core")
    }
}
