import Foundation
import Testing
@testable import Commands

/// A clock and an output the test drives.
final class FakeTerminal: @unchecked Sendable {
    private let lock = NSLock()
    private var _now = 100.0
    private var _text = ""
    var now: Double { get { lock.lock(); defer { lock.unlock() }; return _now } set { lock.lock(); _now = newValue; lock.unlock() } }
    var text: String { lock.lock(); defer { lock.unlock() }; return _text }
    func write(_ s: String) { lock.lock(); _text += s; lock.unlock() }
    func output(_ mode: ProgressOutput.Mode) -> ProgressOutput {
        ProgressOutput(mode: mode, write: { [self] in write($0) }, now: { [self] in now })
    }
}

@Suite struct HumanTests {
    @Test func bytesUseBinaryPrefixes() {
        #expect(Human.bytes(0) == "0 B")
        #expect(Human.bytes(1023) == "1023 B")
        #expect(Human.bytes(1024) == "1.00 KiB")
        #expect(Human.bytes(1536) == "1.50 KiB")
        #expect(Human.bytes(16 * 1_048_576) == "16.0 MiB")
        #expect(Human.bytes(1_048_575) == "1.00 MiB")         // 1023.999 KiB rounds into the next unit
        #expect(Human.bytes(Int64(5) * 1_073_741_824 / 2) == "2.50 GiB")
        #expect(Human.bytes(300 * 1_048_576) == "300 MiB")
        #expect(Human.bytes(12_345) == "12.1 KiB")          // small sizes are never "0 MiB"
    }

    @Test func countsAreSingularOrPlural() {
        #expect(Human.count(1, "segment") == "1 segment")
        #expect(Human.count(0, "segment") == "0 segments")
        #expect(Human.count(UInt64(2), "segment") == "2 segments")
        #expect(Human.count(1, "entry", "entries") == "1 entry")
        #expect(Human.count(3, "entry", "entries") == "3 entries")
    }

    @Test func durations() {
        #expect(Human.duration(0.42) == "0.4 s")
        #expect(Human.duration(42) == "42 s")
        #expect(Human.duration(185) == "3 min 05 s")
        #expect(Human.duration(7_440) == "2 h 04 min")
    }

    @Test func tablesAreAlignedWithAHeader() {
        let t = Human.table(["LABEL", "SIZE", "STATUS"], [["b1", "1.00 KiB", "complete"], ["backup-2", "16.0 MiB", "running"]],
                            align: [.left, .right, .left])
        #expect(t == ["LABEL         SIZE  STATUS",
                      "b1        1.00 KiB  complete",
                      "backup-2  16.0 MiB  running"])
    }
}

@Suite struct ProgressTests {
    @Test func lineWithTotalRateAndETA() {
        let l = WorkProgress.line(title: "backup b1", unit: .bytes, done: 256 * 1_048_576, total: 1024 * 1_048_576, elapsed: 4)
        #expect(l == "backup b1: 256 MiB of 1.00 GiB (25%), 64.0 MiB/s, ETA 12 s")
    }

    @Test func lineForObjectsAndWithoutTotal() {
        #expect(WorkProgress.line(title: "catalog rebuild", unit: .objects, done: 1, total: 1, elapsed: 1) == "catalog rebuild: 1 of 1 object (100%), 1.0 objects/s")
        #expect(WorkProgress.line(title: "verify --deep", unit: .objects, done: 300, total: 1200, elapsed: 10) == "verify --deep: 300 of 1200 objects (25%), 30 objects/s, ETA 30 s")
        #expect(WorkProgress.line(title: "backup b1", unit: .bytes, done: 2048, total: nil, elapsed: 2) == "backup b1: 2.00 KiB, 1.00 KiB/s")
        // No rate yet: no rate, no ETA. Past an estimate: 100%, no ETA.
        #expect(WorkProgress.line(title: "x", unit: .bytes, done: 0, total: 100, elapsed: 0) == "x: 0 B of 100 B (0%)")
        #expect(WorkProgress.line(title: "x", unit: .bytes, done: 150, total: 100, elapsed: 1) == "x: 150 B of 100 B (100%), 150 B/s")
    }

    @Test func terminalLineIsRedrawnInPlaceAndErasedAtTheEnd() {
        let t = FakeTerminal()
        let p = t.output(.terminal(redraw: 0.25)).start("restore b1", unit: .bytes, total: 1000)
        #expect(t.text == "\r" + "restore b1: 0 B of 1000 B (0%)" + "\u{1B}[K")   // drawn at once
        t.now += 0.1
        p.add(100)
        #expect(!t.text.contains("100 B of"))        // not before the redraw interval
        t.now += 0.2
        p.add(100)
        #expect(t.text.hasSuffix("\rrestore b1: 200 B of 1000 B (20%), 667 B/s, ETA 1.2 s\u{1B}[K"))
        #expect(!t.text.contains("\n"))
        p.finish()
        #expect(t.text.hasSuffix("\r\u{1B}[K"))
        p.finish()
        #expect(!t.text.hasSuffix("\r\u{1B}[K\r\u{1B}[K"))
    }

    @Test func aLiveLineShowsTheTotalAsSoonAsItIsKnown() {
        let t = FakeTerminal()
        let p = t.output(.terminal(redraw: 0.25)).start("catalog rebuild", unit: .objects)
        #expect(t.text == "\rcatalog rebuild: 0 objects\u{1B}[K")
        p.setTotal(9)
        #expect(t.text.hasSuffix("\rcatalog rebuild: 0 of 9 objects (0%)\u{1B}[K"))
    }

    @Test func plainLinesEveryInterval() {
        let t = FakeTerminal()
        let p = t.output(.lines(interval: 10)).start("catalog rebuild", unit: .objects)
        p.setTotal(100)
        #expect(t.text.isEmpty)                       // nothing at the start
        for _ in 0..<10 { t.now += 1; p.add(2) }      // 10 s: one line
        #expect(t.text == "walctl: catalog rebuild: 20 of 100 objects (20%), 2.0 objects/s, ETA 40 s\n")
        t.now += 5; p.add(1)
        #expect(t.text.split(separator: "\n").count == 1)
        t.now += 5; p.add(1)
        #expect(t.text.split(separator: "\n").count == 2)
        p.finish()
        #expect(t.text.split(separator: "\n").count == 2)   // no line at the end: the command prints its result
    }

    @Test func offWritesNothingAndIsSafeFromManyThreads() {
        let t = FakeTerminal()
        let p = t.output(.off).start("x", unit: .bytes, total: 10)
        p.add(5); p.finish()
        #expect(t.text.isEmpty)
        let q = t.output(.lines(interval: 1)).start("y", unit: .objects, total: 8000)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in for _ in 0..<1000 { q.add(1) } }
        t.now += 1
        q.add(0)
        #expect(t.text.contains("8000 of 8000 objects (100%)"))
    }
}
