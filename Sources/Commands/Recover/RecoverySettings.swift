import Foundation
import FastPath
import LocalFS
import Planner

/// The files `walctl recover` writes into the restored data directory (docs/recovery.md).
public enum RecoveryFiles {
    /// The plan, for `walctl recover --status`.
    public static let plan = "walctl_recovery_plan.json"
    /// One line per file the restore command delivered: `NAME UNIX_SECONDS`.
    public static let progress = "walctl_recovery_progress"
    /// The server log the printed start command writes.
    public static let log = "walctl_recovery.log"
    /// A complete walctl config for the restore command, written only when credentials came from the
    /// environment or the command line (mode 0600).
    public static let config = "walctl_recovery.conf"
    /// When the restore of the backup started and ended and what it moved (`RestoreTiming`), for
    /// `walctl recover --status --report`.
    public static let timing = "walctl_recovery_timing.json"
}

/// What `walctl recover` measured of its own part of a recovery.
public struct RestoreTiming: Codable, Equatable, Sendable {
    public var restoreStartedAt: Double
    public var restoreFinishedAt: Double
    public var bytes: Int64
    public var storedBytes: Int64
    public var files: Int
}

/// Builds `restore_command` and writes the recovery settings for the server version.
public struct RecoverySettingsWriter {
    /// Absolute path of the walctl executable.
    public var walctl: String
    public var config: Configuration

    public init(walctl: String, config: Configuration) { self.walctl = walctl; self.config = config }

    /// The path the running executable was started by (`argv[0]` made absolute, so a stable symlink
    /// such as /usr/local/bin/walctl stays one; the front hands its own `argv[0]` over), or
    /// `/proc/self/exe` when it was found on PATH. The full binary run by its own name
    /// (`walctl-core`) names the front `walctl` beside it when there is one: commands written for
    /// PostgreSQL and for operators run the front.
    public static func currentExecutable() -> String {
        let argv0 = CommandLine.arguments.first ?? ""
        if let front = FrontMain.frontPath {
            // Handed over by the front at `front` (its real file): argv[0] when it names that same
            // file (a stable symlink stays one), else the front's own path.
            if argv0.contains("/") {
                let named = (absolute(argv0) as NSString).standardizingPath
                if let a = realpath(named, nil) {
                    defer { free(a) }
                    if String(cString: a) == front { return named }
                }
            }
            return front
        }
        var path = absolute(argv0)
        if argv0.contains("/") {
            path = (absolute(argv0) as NSString).standardizingPath
        } else {
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/exe", &buf, buf.count - 1)
            if n > 0 { path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        return frontBeside(path)
    }

    /// `walctl` beside `path` when `path` is the full binary `walctl-core` and the front is installed
    /// there, else `path`.
    static func frontBeside(_ path: String) -> String {
        guard (path as NSString).lastPathComponent == FrontMain.coreName else { return path }
        let front = (path as NSString).deletingLastPathComponent + "/walctl"
        return FileManager.default.isExecutableFile(atPath: front) ? front : path
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// Segments a recovery's restore command prefetches when `restore-prefetch` is not set.
    public static let defaultPrefetch = 8

    /// `restore-prefetch` was not set anywhere: recover turns prefetching on (`defaultPrefetch`).
    var prefetchIsDefault: Bool { (config.sources[Setting.restorePrefetch.name] ?? "default") == "default" }

    /// `walctl-fast` beside `walctl` when installed there, else `walctl`.
    public var program: String {
        let fast = (walctl as NSString).deletingLastPathComponent + "/walctl-fast"
        return FileManager.default.isExecutableFile(atPath: fast) ? fast : walctl
    }

    /// Settings that must travel on the command line: those not read from the config file.
    var explicitSettings: [(name: String, value: String, secret: Bool)] {
        Settings.all.compactMap { d in
            guard let v = config.values[d.name], let src = config.sources[d.name], src != "default",
                  !(config.configFile.map { src.hasPrefix($0 + " line") } ?? false) else { return nil }
            return (d.name, v, d.secret)
        }
    }

    /// True when a credential came from the environment or a flag: the restore command then needs a
    /// config file of its own (`RecoveryFiles.config`), since the server inherits no environment.
    public var needsOwnConfigFile: Bool { explicitSettings.contains { $0.secret } }

    /// The shell command PostgreSQL runs for each file, `%f %p` included. Every setting is either in
    /// the (absolute) config file or on the command line: nothing comes from the environment.
    ///
    /// The program is `walctl-fast` when it is installed beside walctl (it serves prefetched
    /// segments with a rename in ~3 ms and runs walctl for everything else), and prefetching is on
    /// (`restore-prefetch` = `defaultPrefetch`) unless `restore-prefetch` was set: with a plan in
    /// hand, fetching ahead of replay is what an operator wants from a recovery.
    public func restoreCommand(pgdata: String) -> String {
        var words = [program, "archive-get", "--progress-file", RecoveryFiles.progress]
        if needsOwnConfigFile {
            words += ["--config", pgdata + "/" + RecoveryFiles.config]
        } else {
            if let f = config.configFile { words += ["--config", Self.absolute(f)] }
            for s in explicitSettings { words += ["--set", s.name + "=" + s.value] }
        }
        if prefetchIsDefault { words += ["--set", "restore-prefetch=\(Self.defaultPrefetch)"] }
        let cmd = words.map(shellQuote).joined(separator: " ").replacingOccurrences(of: "%", with: "%%")
        // archive-get appends what it delivered to the progress file, so `recover --status` can count.
        return cmd + " %f %p"
    }

    /// With prefetching on: `walctl archive-get --cleanup`, run by PostgreSQL once recovery has
    /// ended, stops the prefetcher and removes its spool from `pg_wal` (docs/async.md).
    public func recoveryEndCommand() -> String? {
        if !prefetchIsDefault, let n = try? config.int(.restorePrefetch), n <= 0 { return nil }
        return [walctl, "archive-get", "--cleanup"].map(shellQuote).joined(separator: " ")
    }

    /// The config file for `needsOwnConfigFile`: every setting that differs from its default.
    public func ownConfigFileText() -> String {
        var out = "# written by walctl recover for this recovery's restore_command; holds credentials: delete it after recovery\n"
        for d in Settings.all {
            guard let v = config.values[d.name], v != d.defaultValue else { continue }
            out += "\(d.name) = \"\(v)\"\n"
        }
        return out
    }

    /// Writes the settings for PostgreSQL `major`: 12+ appends to `postgresql.auto.conf` and creates
    /// `recovery.signal`; older versions get `recovery.conf`.
    ///
    /// - Returns: the files written.
    public func write(settings: [RecoverySetting], pgdata: String, major: Int, header: String) throws -> [String] {
        var lines = "\n# \(header)\n"
        for s in settings { lines += "\(s.name) = '\(confQuote(s.value))'\n" }
        var written: [String] = []
        if needsOwnConfigFile {
            let p = pgdata + "/" + RecoveryFiles.config
            try writeFile(p, Data(ownConfigFileText().utf8), append: false, mode: 0o600)
            written.append(p)
        }
        if major >= 12 {
            let auto = pgdata + "/postgresql.auto.conf"
            try writeFile(auto, Data(lines.utf8), append: true, mode: 0o600)
            let signal = pgdata + "/recovery.signal"
            try writeFile(signal, Data(), append: false, mode: 0o600)
            written += [auto, signal]
        } else {
            let conf = pgdata + "/recovery.conf"
            try writeFile(conf, Data(lines.utf8), append: false, mode: 0o600)
            written.append(conf)
        }
        return written
    }
}

/// Single-quotes a word for /bin/sh.
func shellQuote(_ s: String) -> String {
    if !s.isEmpty && s.utf8.allSatisfy({ c in
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "/._-=:+,@".utf8.contains(c)
    }) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Escapes a value for a single-quoted PostgreSQL configuration string.
func confQuote(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''")
}

/// Writes (atomically, LocalFS) or appends `data` to `path`, durably (file and directory synced), and
/// gives a new file `mode` and, when running as root, the owner of its directory.
func writeFile(_ path: String, _ data: Data, append: Bool, mode: mode_t) throws {
    var owner: (uid: uid_t, gid: gid_t)?
    if geteuid() == 0 {
        var st = stat()
        if stat(LocalFS.directory(of: path), &st) == 0 { owner = (st.st_uid, st.st_gid) }
    }
    do {
        if append {
            try LocalFS.append(path, Array(data), mode: mode, durability: .full, owner: owner)
        } else {
            try LocalFS.writeFile(path, Array(data), mode: mode, durability: .full, owner: owner)
        }
    } catch { throw WalctlError(error) }
}
