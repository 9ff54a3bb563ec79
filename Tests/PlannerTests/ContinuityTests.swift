import Catalog
import Planner
import Testing
import WALFormat

/// `walctl verify`'s check (issue 8): continuity along the newest timeline's path.
@Suite struct ContinuityTests {
    @Test func aContinuousArchiveIsOK() throws {
        let r = try ContinuityChecker.check(catalog: archive())
        #expect(r.ok)
        #expect(r.timeline == 2)
        // From the oldest backup's start segment (b1, segment 3) to timeline 2's last segment.
        #expect(r.timelines.map { [$0.timeline, UInt32($0.firstSegno), UInt32($0.lastSegno)] } == [[1, 3, 59], [2, 60, 80]])
        #expect(r.gaps.isEmpty && r.skipped.isEmpty && r.missingHistoryFiles.isEmpty)
        #expect(r.backups.map(\.label) == ["b1", "b2", "b3"] && r.backups.allSatisfy(\.walComplete))
    }

    @Test func gapsSkipsAndBackupsWithoutTheirWALAreFound() throws {
        let c = archive()
        c.segments[1]![30] = nil
        c.segments[1]![40] = nil
        c.segments[2]![70] = nil
        c.skipped = [SkippedSegment(name: name(1, 30), timeline: 1, segno: 30, reason: "waited 4000 s", skippedAt: at(3060), size: Int64(size.bytes))]
        c.backups.append(backup("broken", tl: 1, startSeg: 29, stopSeg: 31, stop: 3100))
        let r = try ContinuityChecker.check(catalog: c)
        #expect(!r.ok)
        #expect(r.gaps == [ContinuityGap(timeline: 1, firstSegno: 30, lastSegno: 30, from: name(1, 30), to: name(1, 30), count: 1),
                           ContinuityGap(timeline: 1, firstSegno: 40, lastSegno: 40, from: name(1, 40), to: name(1, 40), count: 1),
                           ContinuityGap(timeline: 2, firstSegno: 70, lastSegno: 70, from: name(2, 70), to: name(2, 70), count: 1)])
        #expect(r.skipped.map(\.name) == [name(1, 30)])
        let broken = try #require(r.backups.first { $0.label == "broken" })
        #expect(!broken.walComplete && broken.missingSegments == 1)
        #expect(broken.firstSegment == name(1, 29) && broken.lastSegment == name(1, 31))
        #expect(r.backups.filter { !$0.walComplete }.map(\.label) == ["broken"])
        // Timeline 1's own segments after the fork are not on timeline 2's path.
        c.segments[1]![90] = nil
        #expect(try ContinuityChecker.check(catalog: c).gaps.count == 3)
    }

    @Test func withoutBackupsFromTheFirstArchivedSegment() throws {
        let c = archive()
        c.backups = []
        c.segments[1]![1] = nil
        let r = try ContinuityChecker.check(catalog: c)
        #expect(r.ok && r.backups.isEmpty)
        #expect(r.timelines.first?.firstName == name(1, 2))
    }

    @Test func aMissingHistoryFileAndAnEmptyArchive() throws {
        let c = archive()
        add(c, 3, 81, first: 8100, last: 8150)
        let r = try ContinuityChecker.check(catalog: c)
        #expect(!r.ok && r.timeline == 3 && r.missingHistoryFiles == ["00000003.history"])
        let empty = try ContinuityChecker.check(catalog: FakeCatalog())
        #expect(empty.ok && empty.timeline == nil)
    }
}
