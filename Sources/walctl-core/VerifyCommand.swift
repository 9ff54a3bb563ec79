import ArgumentParser
import Commands
import Foundation
import Planner

/// `walctl verify`: is the archive continuous from the oldest backup to the newest segment?
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the archive's continuity: gaps, segments skipped by the safety valve, backups without their WAL.",
        usage: "walctl verify [--deep] [--repair] [--json] [--no-progress] [--config <file>] [--set <name=value> ...]",
        discussion: """
            Along the newest timeline's path, from the oldest backup's start segment (or the first archived \
            segment) to the newest archived segment, from the catalog (rebuilt first when incomplete), reconciled \
            with a listing of the repository over that range: STALE (archived, not in the catalog), MISSING (in the \
            catalog, not in the repository), DAMAGED (WAL failing its CRC, no backup after it), LEFTOVER (temporary or \
            unreferenced objects older than an hour; not an error). --repair brings the catalog up to date. --deep also \
            reads every object in that range back and checks its CRC-32C. One line per problem. Exit 0: clean; \
            1: problems found; 2: the check could not run. --json keys are documented in docs/json.md.


            """ + examples("walctl verify", "walctl verify --deep", "walctl verify --repair")
    )
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Flag(name: .long, help: "Read every archived object in the range back and verify its size and CRC-32C.") var deep = false
    @Flag(name: .long, help: "Bring a stale catalog up to date from the repository: insert what it has, remove rows whose objects are gone.") var repair = false
    @OptionGroup var progressOptions: ProgressOptions

    func run() throws {
        var clean = true
        try runCommand(exitCode: 2) {
            let config: Configuration
            do { config = try global.load() } catch let f as Failure { throw Failure(error: f.error, exitCode: 2) }
            var verify = ArchiveVerify(config: config, logger: config.interactiveLogger)
            verify.progress = try progressOptions.output(config)
            let result = try verify.run(deep: deep, repair: repair)
            print(json ? try JSONOutput.render(result) : VerifyText.render(result))
            clean = result.ok
        }
        if !clean { throw ExitCode(1) }
    }
}

/// The human-readable `walctl verify`: a summary, then one line per problem naming the files.
enum VerifyText {
    static func render(_ r: ContinuityReport) -> String {
        var out: [String]
        if let tl = r.timeline {
            let span = r.timelines.map { "\($0.firstName) .. \($0.lastName)" }.joined(separator: ", ")
            out = ["verify: timeline \(tl), WAL \(span.isEmpty ? "(none)" : span), \(Human.count(r.backups.count, "backup"))\(r.deep ? ", \(Human.count(r.objectsRead, "object")) read back" : "")"]
        } else {
            out = ["verify: the catalog lists no archived WAL"]
        }
        for f in r.repaired { out.append("REPAIRED \(f.name): \(f.detail) (\(f.key))") }
        for f in r.staleCatalog { out.append("STALE    \(f.name): \(f.detail) (\(f.key)): the catalog is stale; run walctl verify --repair") }
        for f in r.missingObjects { out.append("MISSING  \(f.name): \(f.detail) (\(f.key))") }
        for d in r.damaged {
            out.append("DAMAGED  \(d.name) at \(d.lsn): \(d.reason); recovery cannot replay past it: take a new base backup")
        }
        for l in r.leftovers {
            out.append("LEFTOVER \(l.key)  (\(Human.bytes(l.size)), modified \(l.modifiedAt?.iso8601 ?? "?")): a temporary or unreferenced object of an interrupted write; safe to delete")
        }
        guard let tl = r.timeline else {
            out.append(r.ok ? "verify: nothing is archived yet: ok" : "verify: PROBLEMS FOUND")
            return out.joined(separator: "\n")
        }
        for h in r.missingHistoryFiles {
            out.append("MISSING  \(h): the path to timeline \(tl) is unknown; archive it from the pg_wal of the server that created the timeline")
        }
        for g in r.gaps {
            let inside = r.skipped.filter { $0.timeline == g.timeline && $0.name >= g.from && $0.name <= g.to }.count
            out.append("GAP      \(g.from) .. \(g.to)  (\(Human.count(g.count, "segment")) missing\(inside > 0 ? ", \(inside) skipped by the safety valve" : ""))")
        }
        for g in r.expiredGaps {
            out.append("EXPIRED  \(g.from) .. \(g.to)  (\(g.count) segments removed by walctl expire: the retention settings keep only the backups' own WAL here; not a problem)")
        }
        for s in r.skipped {
            out.append("SKIPPED  \(s.name)  at \(s.skippedAt.iso8601) by the safety valve (\(s.reason)): PITR cannot cross it; take a new base backup")
        }
        for b in r.backups where !b.walComplete {
            out.append("BACKUP   \(b.label): its WAL \(b.firstSegment) .. \(b.lastSegment) is incomplete (\(Human.count(b.missingSegments, "segment")) missing): it cannot be restored")
        }
        for c in r.corrupt { out.append("CORRUPT  \(c.name): \(c.error)") }
        out.append(r.ok ? "verify: ok" : "verify: PROBLEMS FOUND")
        return out.joined(separator: "\n")
    }
}
