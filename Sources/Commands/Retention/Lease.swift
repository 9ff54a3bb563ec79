import Foundation
import Logging
import Planner
import Storage
import WALFormat

/// The repository lease `walctl expire` holds while it removes anything, and the registrations
/// (holds) of the backups and recoveries running against the repository, from any host.
/// The protocol is in docs/retention.md ("The lease").
///
/// ```
/// locks/expire.lease                  RepositoryLease (JSON): who expires, until when
/// locks/holds/<kind>-<host>-<pid>-<token>.json   RegisteredHold (JSON): what a backup/recovery needs, until when
/// ```
public struct RepositoryLease: Codable, Equatable, Sendable {
    public var owner: String
    public var host: String
    public var pid: Int32
    /// Random, so the holder can tell its own lease from a successor's.
    public var token: String
    public var acquiredAt: PGTimestamp
    public var expiresAt: PGTimestamp
}

/// A running backup's or recovery's registration.
public struct RegisteredHold: Codable, Equatable, Sendable {
    /// `backup` or `recover`.
    public var kind: String
    public var host: String
    public var pid: Int32
    public var registeredAt: PGTimestamp
    public var expiresAt: PGTimestamp
    /// The backup label it writes (backup) or restores (recover).
    public var label: String?
    /// The WAL it needs: from this LSN on `timeline` (and the timelines descending from it there).
    public var timeline: TimeLineID?
    public var from: LSN?

    public var retentionHold: RetentionHold {
        RetentionHold(owner: "\(kind) on \(host) pid \(pid)", timeline: timeline ?? 1, from: from, label: label)
    }
}

public enum RepositoryLock {
    public static let leaseKey = "locks/expire.lease"
    public static let holdPrefix = "locks/holds/"

    static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        return gethostname(&buf, buf.count) == 0 ? String(cString: buf) : "unknown-host"
    }

    static func token() -> String {
        var g = SystemRandomNumberGenerator()
        return String(g.next() as UInt64, radix: 16)
    }

    static func encode<T: Encodable>(_ v: T) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Array(try enc.encode(v))
    }

    /// The lease now in the repository, nil when none (or unreadable: treated as stale).
    public static func current(_ store: ObjectStore) throws -> RepositoryLease? {
        guard let bytes = try store.get(key: leaseKey) else { return nil }
        return try? JSONDecoder().decode(RepositoryLease.self, from: Data(bytes))
    }

    /// Takes the lease for `duration` seconds: refuses (`lease-held`) while another holder's lease
    /// has not expired; takes over an expired one, or one whose holder ran on this host and whose
    /// process is gone (deleted, then written if-absent, then read back).
    public static func acquire(_ store: ObjectStore, owner: String, duration: TimeInterval, now: Date = Date(),
                               logger: Logger) throws -> RepositoryLease {
        let mine = RepositoryLease(owner: owner, host: hostName, pid: getpid(), token: token(), acquiredAt: PGTimestamp(date: now),
                                   expiresAt: PGTimestamp(date: now.addingTimeInterval(duration)))
        for _ in 0..<3 {
            if let held = try current(store) {
                // Stale: expired, or its holder ran on this host and its process is gone.
                let gone = abandoned(held)
                if held.expiresAt > PGTimestamp(date: now) && !gone {
                    throw WalctlError.leaseHeld("the repository lease is held by \(held.owner) on \(held.host) pid \(held.pid) since \(held.acquiredAt.iso8601), until \(held.expiresAt.iso8601) (\(leaseKey)): another expire is running; wait for it, or delete the object if that process is gone")
                }
                logger.notice("taking over the \(gone ? "abandoned" : "expired") repository lease of \(held.owner) on \(held.host) pid \(held.pid) (\(gone ? "the process is gone" : "expired \(held.expiresAt.iso8601)"))")
                try repositoryCall { () throws(StoreError) in try store.delete(key: leaseKey) }
            } else if try store.get(key: leaseKey) != nil {
                // Present but unreadable: a torn write of a killed holder. Stale.
                try repositoryCall { () throws(StoreError) in try store.delete(key: leaseKey) }
            }
            let bytes = try encode(mine)
            do {
                try store.put(key: leaseKey, bytes: bytes, options: PutOptions(ifAbsent: true))
            } catch {
                if case .alreadyExists = error { continue }
                throw WalctlError.store(error)
            }
            if let back = try current(store), back.token == mine.token { return mine }
        }
        throw WalctlError.leaseHeld("could not take the repository lease (\(leaseKey)): another process took it at the same time")
    }

    /// True when the lease's holder ran on this host and its process is gone (a killed expire).
    static func abandoned(_ l: RepositoryLease) -> Bool {
        l.host == hostName && l.pid > 0 && kill(l.pid, 0) != 0 && errno == ESRCH
    }

    /// Gives the lease back, if it is still ours.
    public static func release(_ store: ObjectStore, _ lease: RepositoryLease) {
        guard let held = try? current(store), held.token == lease.token else { return }
        try? store.delete(key: leaseKey)
    }

    /// Registers what a backup or recovery needs; returns the key to unregister with.
    public static func register(_ store: ObjectStore, kind: String, label: String?, timeline: TimeLineID?, from: LSN?,
                                duration: TimeInterval, now: Date = Date()) throws -> String {
        let hold = RegisteredHold(kind: kind, host: hostName, pid: getpid(), registeredAt: PGTimestamp(date: now),
                                  expiresAt: PGTimestamp(date: now.addingTimeInterval(duration)), label: label, timeline: timeline, from: from)
        let safeHost = String(hold.host.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }.prefix(64))
        let key = holdPrefix + "\(kind)-\(safeHost)-\(hold.pid)-\(token()).json"
        try repositoryCall { () throws(StoreError) in try store.put(key: key, bytes: try encodeOrEmpty(hold)) }
        return key
    }

    private static func encodeOrEmpty(_ h: RegisteredHold) throws(StoreError) -> [UInt8] {
        do { return try encode(h) } catch { throw .configuration("cannot encode a hold: \(error)") }
    }

    public static func unregister(_ store: ObjectStore, key: String) { try? store.delete(key: key) }

    /// The live holds, and the keys of expired ones (removed by expire).
    public static func holds(_ store: ObjectStore, now: Date = Date()) throws -> (live: [RegisteredHold], expired: [String]) {
        var live: [RegisteredHold] = [], expired: [String] = []
        let keys = try repositoryCall { () throws(StoreError) in try store.list(prefix: holdPrefix) }
        for o in keys {
            guard let bytes = try store.get(key: o.key) else { continue }
            guard let h = try? JSONDecoder().decode(RegisteredHold.self, from: Data(bytes)) else { expired.append(o.key); continue }
            if h.expiresAt > PGTimestamp(date: now) { live.append(h) } else { expired.append(o.key) }
        }
        return (live, expired)
    }

    /// Waits while another process's expire lease is live (at most `timeout` seconds); returns
    /// true when it waited for one.
    public static func waitForExpire(_ store: ObjectStore, timeout: TimeInterval, logger: Logger) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var waited = false
        while let l = try current(store), l.expiresAt > PGTimestamp(date: Date()), !abandoned(l) {
            if !waited { logger.notice("waiting for the expire of \(l.owner) on \(l.host) pid \(l.pid) to finish (repository lease until \(l.expiresAt.iso8601))") }
            waited = true
            guard Date() < deadline else {
                throw WalctlError.leaseHeld("an expire holds the repository lease (\(l.owner) on \(l.host) pid \(l.pid), until \(l.expiresAt.iso8601)); waited \(Int(timeout)) s")
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return waited
    }
}
