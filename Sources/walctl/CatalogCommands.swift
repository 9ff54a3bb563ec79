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
            let access = try CatalogAccess(config: config, note: report)
            let info = try access.open().info()
            if json { print(try info.json()) } else { print(InfoText.render(info)) }
            if !json, let spool = SpoolStatus.load(config: config) { print(spool.lines.joined(separator: "\n")) }  // issue 8: archive backlog
        }
    }
}

struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Maintain the local catalog (an index of the repository).",
        subcommands: [Rebuild.self, Check.self]
    )

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
                let drift = try access.openRaw().check(against: access.repository)
                print(drift)
                if !drift.isClean { throw ExitCode(1) }
            }
        }
    }
}

/// The human-readable `walctl info`.
enum InfoText {
    static func render(_ i: CatalogInfo) -> String {
        var out = ["repository: \(i.repository)  (system \(i.systemIdentifier ?? "?"), \(i.walSegmentSize / 1048576) MiB segments)"]
        out.append("catalog: \(i.catalogPath)\(i.catalogComplete ? "" : "  (INCOMPLETE: run walctl catalog rebuild)")")
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
        if let l = i.lastArchived {
            out.append("last archived: \(l.name) at \(l.archivedAt.iso8601) (\(Int(l.ageSeconds)) s ago)")
        } else {
            out.append("last archived: none")
        }
        return out.joined(separator: "\n")
    }
}
