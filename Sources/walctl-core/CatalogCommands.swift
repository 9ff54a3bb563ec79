import ArgumentParser
import Catalog
import Commands
import Foundation
import WALFormat

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Backups, archived WAL per timeline with gaps, the recoverable window, the last archived segment.",
        discussion: "--json prints one object whose keys are documented in docs/json.md and kept stable.\n\n"
            + examples("walctl info", "walctl info --json | jq '.recoverableWindows'", "walctl info --config /etc/walctl/walctl.conf --repository s3://backups/prod")
    )
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        try runCommand {
            let config = try global.load()
            let info = try ArchiveInfo(config: config, logger: config.interactiveLogger).run()
            if json { print(try JSONOutput.render(info)) } else { print(InfoText.render(info)) }
            if !json, let spool = SpoolStatus.load(config: config) { print(spool.lines.joined(separator: "\n")) }  // issue 8: archive backlog
        }
    }
}

struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Maintain the local catalog (an index of the repository).",
        discussion: examples("walctl catalog check", "walctl catalog rebuild", "walctl catalog find --time '2026-11-26 14:03:00+00'"),
        subcommands: [Rebuild.self, Check.self, Find.self]
    )

    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find the archived segment by name, by LSN, or the first one whose commits pass a time.",
            usage: "walctl catalog find (--name <segment> | --lsn <X/Y> | --time <time>) [--timeline <N>] [--json]\n  [--config <file>] [--set <name=value> ...]",
            discussion: "--time answers: which segment does recovery to this time stop in (the first with a commit or abort after it)?\n\n"
                + examples("walctl catalog find --name 000000010000000000000003", "walctl catalog find --lsn 0/3000028 --timeline 1",
                           "walctl catalog find --time '2026-11-26 14:03:00+00' --json")
        )
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "Segment file name.") var name: String?
        @Option(name: .long, help: "An LSN (X/Y): the segment holding it.") var lsn: String?
        @Option(name: .long, help: "A time with zone: the first segment with a commit or abort after it.") var time: String?
        @Option(name: .long, help: "Timeline (default: the newest).") var timeline: UInt32?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            try runCommand {
                let config = try global.load()
                let catalog = try CatalogAccess(config: config, logger: config.interactiveLogger).open()
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
                    print(try JSONOutput.render(JSONDocuments.CatalogFind(segment: s)))
                } else {
                    print("\(s.name)  archived \(s.archivedAt.iso8601)  \(Human.count(s.commits, "commit"))  \(s.firstXactTime?.iso8601 ?? "-") .. \(s.lastXactTime?.iso8601 ?? "-")")
                }
            }
        }
    }

    struct Rebuild: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rebuild the catalog from the repository alone.",
                                                        discussion: examples("walctl catalog rebuild", "walctl catalog rebuild --catalog /var/lib/walctl/catalog.db"))
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print JSON (docs/json.md).") var json = false
        @OptionGroup var progressOptions: ProgressOptions
        func run() throws {
            try runCommand {
                let config = try global.load()
                var access = try CatalogAccess(config: config, logger: config.interactiveLogger)
                access.progress = try progressOptions.output(config)
                let r = try access.rebuild(try access.openRaw())
                if json {
                    print(try JSONOutput.render(JSONDocuments.CatalogRebuild(catalogPath: access.path, repository: access.repository.url, rebuild: r)))
                } else {
                    print(CatalogText.rebuild(r, path: access.path, repository: access.repository.url).joined(separator: "\n"))
                }
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compare the catalog with the repository; exit 1 on drift.",
                                                        discussion: examples("walctl catalog check", "walctl catalog check || walctl verify --repair"))
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print JSON (docs/json.md).") var json = false
        func run() throws {
            try runCommand {
                let config = try global.load()
                let access = try CatalogAccess(config: config, logger: config.interactiveLogger)
                let catalog = try access.openRaw()
                let drift = try catalog.check(against: access.repository)
                if drift.isClean { try catalog.markChecked() }
                if json {
                    print(try JSONOutput.render(JSONDocuments.CatalogCheck(catalogPath: access.path, repository: access.repository.url, drift: drift)))
                } else {
                    print(CatalogText.check(drift, path: access.path, repository: access.repository.url).joined(separator: "\n"))
                }
                if !drift.isClean { throw ExitCode(1) }
            }
        }
    }
}

/// The human `catalog check` and `catalog rebuild`: one line per finding, then a summary.
enum CatalogText {
    static func check(_ d: CatalogDrift, path: String, repository: String) -> [String] {
        var out: [String] = []
        func list(_ names: [String], _ tag: String, _ what: String) {
            for n in names { out.append("\(tag) \(n): \(what)") }
        }
        list(d.missingFromCatalog, "STALE   ", "archived in the repository, not in the catalog")
        list(d.missingFromRepository, "MISSING ", "in the catalog, its meta is not in the repository")
        list(d.metaWithoutObject, "MISSING ", "its meta is in the repository, its data object is not")
        list(d.backupsMissingFromCatalog, "STALE   ", "backup in the repository, not in the catalog")
        list(d.backupsMissingFromRepository, "MISSING ", "backup in the catalog, its backup.json is not in the repository")
        list(d.unreadable, "UNREADABLE", "could not be read or decoded")
        list(d.skippedMissingFromCatalog, "STALE   ", "skipped by the safety valve (marker in the repository), not in the catalog")
        list(d.skippedMissingFromRepository, "STALE   ", "skipped in the catalog, no marker in the repository")
        if !d.expiring.isEmpty {
            out.append("expiring: \(Human.count(d.expiring.count, "item")) an interrupted walctl expire has not finished removing (not drift; the next walctl expire finishes them)")
        }
        if d.isClean {
            out.append("catalog \(path) matches \(repository): ok")
        } else {
            let n = d.missingFromCatalog.count + d.missingFromRepository.count + d.metaWithoutObject.count + d.backupsMissingFromCatalog.count
                + d.backupsMissingFromRepository.count + d.unreadable.count + d.skippedMissingFromCatalog.count + d.skippedMissingFromRepository.count
            out.append("catalog \(path) differs from \(repository): \(Human.count(n, "difference")); run walctl verify --repair or walctl catalog rebuild")
        }
        return out
    }

    static func rebuild(_ r: RebuildReport, path: String, repository: String) -> [String] {
        var out = r.unreadable.map { "UNREADABLE \($0)" }
        var parts = [Human.count(r.segments, "segment"), Human.count(r.partialSegments, "partial segment"),
                     Human.count(r.historyFiles, "history file"), Human.count(r.backupHistoryFiles, "backup history file"),
                     Human.count(r.backups, "backup")]
        if r.skippedSegments > 0 { parts.append(Human.count(r.skippedSegments, "skipped segment")) }
        if !r.unreadable.isEmpty { parts.append("\(r.unreadable.count) unreadable") }
        out.append("catalog \(path) rebuilt from \(repository) in \(Human.duration(r.seconds)): \(parts.joined(separator: ", "))")
        return out
    }
}

/// The human-readable `walctl info`.
enum InfoText {
    static func render(_ i: CatalogInfo) -> String {
        var out = ["status: \(i.status ?? "unknown")"]
        out += ["repository: \(i.repository)  (system \(i.systemIdentifier ?? "?"), \(Human.bytes(i.walSegmentSize)) segments)"]
        out.append("catalog: \(i.catalogPath)\(i.catalogComplete ? "" : "  (INCOMPLETE: run walctl catalog rebuild)")  (last reconciled with the repository: \(i.catalogCheckedAt?.iso8601 ?? "never"))")
        out.append("backups: \(i.backups.count)")
        if !i.backups.isEmpty { out += BackupText.table(i.backups).map { "  " + $0 } }
        for t in i.timelines {
            out.append("timeline \(t.timeline)\(t.parent.map { " (from \($0) at \(t.switchPoint?.description ?? "?"))" } ?? ""): \(Human.count(t.segments, "segment")), \(Human.bytes(t.bytes)) (\(Human.bytes(t.storedBytes)) stored)")
            for r in t.ranges { out.append("  archived \(r.firstName) .. \(r.lastName)  (\(Human.count(r.count, "segment")))") }
            for g in t.gaps { out.append("  GAP      \(g.firstName) .. \(g.lastName)  (\(Human.count(g.count, "segment")) missing)") }
        }
        for w in i.recoverableWindows {
            out.append("recoverable on timeline \(w.timeline): \(w.from.map { $0.iso8601 } ?? "(no backup)") .. \(w.to.map { $0.iso8601 } ?? "?")\(w.gaps.isEmpty ? "" : "  (broken by \(Human.count(w.gaps.count, "gap")))")")
        }
        var byTimeline: [(TimeLineID, [SkippedSegment])] = []
        for s in i.skippedSegments {
            if byTimeline.last?.0 == s.timeline { byTimeline[byTimeline.count - 1].1.append(s) } else { byTimeline.append((s.timeline, [s])) }
        }
        for (tl, skipped) in byTimeline {
            out.append("PITR broken: \(Human.count(skipped.count, "segment")) skipped by the safety valve on timeline \(tl) (\(skipped[0].name)..\(skipped[skipped.count - 1].name)); take a new base backup")
        }
        if let r = i.retention {
            let set = [r.window.map { "retention-window \($0)" }, r.full.map { "retention-full \($0)" }, r.archiveFull.map { "retention-archive-full \($0)" }].compactMap { $0 }
            out.append("retention: \(set.isEmpty ? "none set (walctl expire refuses; the repository grows)" : set.joined(separator: ", "))\(r.expireAuto ? ", expire-auto" : "")")
            out.append("  window guaranteed: \(r.guaranteedFrom.map { "from " + $0.iso8601 } ?? (r.full != nil ? "the newest \(r.full!) backups" : "-"))  window that exists: \(r.existsFrom.map { "from " + $0.iso8601 + " (backup \(r.existsFromBackup ?? "?"))" } ?? "none (no backup)")")
        }
        if let l = i.lastArchived {
            out.append("last archived: \(l.name) at \(l.archivedAt.iso8601) (\(Human.duration(max(0, l.ageSeconds))) ago)")
        } else {
            out.append("last archived: none")
        }
        out += DrillText.infoLines(i)
        return out.joined(separator: "\n")
    }
}
