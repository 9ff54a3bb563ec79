import Testing
@testable import Commands

/// `--tablespace-mapping OLDDIR=NEWDIR` of restore-backup and recover.
@Suite struct TablespaceMappingTests {
    @Test func pairsOfAbsoluteDirectoriesWithoutTrailingSlashes() throws {
        let m = try RestoreOptions.tablespaceMapping(["/srv/pg/ts1=/srv/restore/ts1", "/srv/pg/ts2/=/mnt/x//"])
        #expect(m == ["/srv/pg/ts1": "/srv/restore/ts1", "/srv/pg/ts2": "/mnt/x"])
        #expect(try RestoreOptions.tablespaceMapping([]).isEmpty)
    }

    @Test func mistakesAreUsageErrors() {
        for bad in [["/srv/pg/ts1"], ["relative=/srv/x"], ["/srv/pg/ts1=relative"], ["=/srv/x"], ["/a=/b", "/a/=/c"]] {
            #expect(throws: WalctlError.self, "\(bad)") { try RestoreOptions.tablespaceMapping(bad) }
            do { _ = try RestoreOptions.tablespaceMapping(bad) } catch let e as WalctlError {
                guard case .usage(let text) = e else { Issue.record("\(bad): \(e) is not a usage error"); continue }
                #expect(text.contains("--tablespace-mapping"), "\(bad): \(text)")
            } catch { Issue.record("\(bad): \(error)") }
        }
    }
}
