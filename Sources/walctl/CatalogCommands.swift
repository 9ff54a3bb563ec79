import ArgumentParser
import Catalog
import Commands
import Foundation
import WALFormat

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Backups, archived WAL per timeline with gaps, the recoverable window, the last archived segment.",
        discussion: "--json prints one object whose keys are documented in docs/catalog.md and kept stable."
    )
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        try runCommand {
            let config = try global.load()
            let info = try ArchiveInfo(config: config, note: report).run()
            if json { print(try info.json()) } else { print(InfoText.render(info)) }
            if !json, let spool = SpoolStatus.load(config: config) { print(spool.lines.joined(separator: "\n")) }  // issue 8: archive backlog
        }
    }
}

struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Maintain the local catalog (an index of the repository).",
        subcommands: [Rebuild.self, Check.self, Find.self]
    )

    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find the archived segment by name, by LSN, or the first one whose commits pass a time.",
            discussion: "--time answers: which segment does recovery to this time stop in (the first with a commit or abort after it)?"
        )
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "Segment file name.") var name: String?
        @Option(name: .long, help: "An LSN (X/Y): the segment holding it.") var lsn: String?
        @Option(name: .long, help: "A time with zone: the first segment with a commit or abort after it.") var time: String?
        @Option(name: .long, help: "Timeline (default: the newest).") var timeline: UInt32?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            try runCommand {
                let catalog = try CatalogAccess(config: try global.load(), note: report).open()
                let tli = try timeline ?? catalog.timelines().max() ?? 1
                let found: SegmentRecord?
                if let name {
                    found = try catalog.segment(named: name)
                } else if let lsn {
                    guard let l = LSN(lsn) else { throw ValidationError("--lsn expects X/Y in hex, got \(lsn)") }
                    found = try catalog.segment(containing: l, timeline: tli)
                } else if let time {
                    guard let t = PGTimestamp(parsing: time) else { throw ValidationError("--time needs a zone, e.g. '2026-11-26 14:03:00+00'") }
                    found = try catalog.firstSegment(reaching: t, on: try catalog.path(to: tli))
                } else {
                    throw ValidationError("give --name, --lsn or --time")
                }
                guard let s = found else { report("no archived segment matches"); throw ExitCode(1) }
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try enc.encode(s), as: UTF8.self))
                } else {
                    print("\(s.name)  archived \(s.archivedAt.iso8601)  commits \(s.commits)  \(s.firstXactTime?.iso8601 ?? "-") .. \(s.lastXactTime?.iso8601 ?? "-")")
                }
            }
        }
    }

    struct Rebuild: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rebuild the catalog from the repository alone.")
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try runCommand {
                let access = try CatalogAccess(config: try global.load(), note: report)
                let start = Date()
                let r = try access.rebuild(try access.openRaw())
                print("catalog \(access.path) rebuilt from \(access.repository.url) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s: \(r)")
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compare the catalog with the repository; exit 1 on drift.")
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try runCommand {
                let access = try CatalogAccess(config: try global.load(), note: report)
                let catalog = try access.openRaw()
                let drift = try catalog.check(against: access.repository)
                if drift.isClean { try catalog.markChecked() }
                print(drift)
                if !drift.isClean { throw ExitCode(1) }
            }
        }
    }
}

/// The human-readable `walctl info`.
enum InfoText {
    static func render(_ i: CatalogInfo) -> String {
        var out = ["status: \(i.status ?? "unknown")"]
        out += ["repository: \(i.repository)  (system \(i.systemIdentifier ?? "?"), \(i.walSegmentSize / 1048576) MiB segments)"]
        out.append("catalog: \(i.catalogPath)\(i.catalogComplete ? "" : "  (INCOMPLETE: run walctl catalog rebuild)")  (last reconciled with the repository: \(i.catalogCheckedAt?.iso8601 ?? "never"))")
        out.append("backups: \(i.backups.count)")
        for b in i.backups {
            out.append("  \(b.label)  timeline \(b.timeline)  \(b.startLSN)..\(b.stopLSN)  \(b.startTime.iso8601) .. \(b.stopTime.iso8601)  \(b.status)")
        }
        for t in i.timelines {
            out.append("timeline \(t.timeline)\(t.parent.map { " (from \($0) at \(t.switchPoint?.description ?? "?"))" } ?? ""): \(t.segments) segments, \(t.bytes / 1048576) MiB (\(t.storedBytes / 1048576) MiB stored)")
            for r in t.ranges { out.append("  archived \(r.firstName) .. \(r.lastName)") }
            for g in t.gaps { out.append("  GAP      \(g.firstName) .. \(g.lastName)  (\(g.count) segments missing)") }
        }
        for w in i.recoverableWindows {
            out.append("recoverable on timeline \(w.timeline): \(w.from.map { $0.iso8601 } ?? "(no backup)") .. \(w.to.map { $0.iso8601 } ?? "?")\(w.gaps.isEmpty ? "" : "  (broken by \(w.gaps.count) gaps)")")
        }
        var byTimeline: [(TimeLineID, [SkippedSegment])] = []
        for s in i.skippedSegments {
            if byTimeline.last?.0 == s.timeline { byTimeline[byTimeline.count - 1].1.append(s) } else { byTimeline.append((s.timeline, [s])) }
        }
        for (tl, skipped) in byTimeline {
            out.append("PITR broken: \(skipped.count) segments skipped by the safety valve on timeline \(tl) (\(skipped[0].name)..\(skipped[skipped.count - 1].name)); take a new base backup")
        }
        if let r = i.retention {
            let set = [r.window.map { "retention-window \($0)" }, r.full.map { "retention-full \($0)" }, r.archiveFull.map { "retention-archive-full \($0)" }].compactMap { $0 }
            out.append("retention: \(set.isEmpty ? "none set (walctl expire refuses; the repository grows)" : set.joined(separator: ", "))\(r.expireAuto ? ", expire-auto" : "")")
            out.append("  window guaranteed: \(r.guaranteedFrom.map { "from " + $0.iso8601 } ?? (r.full != nil ? "the newest \(r.full!) backups" : "-"))  window that exists: \(r.existsFrom.map { "from " + $0.iso8601 + " (backup \(r.existsFromBackup ?? "?"))" } ?? "none (no backup)")")
        }
        if let l = i.lastArchived {
            out.append("last archived: \(l.name) at \(l.archivedAt.iso8601) (\(Int(l.ageSeconds)) s ago)")
        } else {
            out.append("last archived: none")
        }
        return out.joined(separator: "\n")
    }
}
