import Foundation
import Storage
import WALFormat
import Codec

/// The outcome of one archive-get.
public enum GetOutcome: Equatable {
    /// The file was restored to the target path, verified.
    case restored(ArchivedFileMeta)
    /// The file is not in the archive (PostgreSQL asks for such files all the time).
    case notFound
}

/// archive-get: fetch, decompress and verify one archived file, and write it to the target path
/// atomically (temporary name, fsync, rename), so PostgreSQL never sees a partial or corrupt file.
public struct ArchiveGet {
    public var repository: Repository
    /// How long to keep retrying a failing repository before giving up.
    public var retryTime: TimeInterval
    public var warn: (String) -> Void

    public init(repository: Repository, retryTime: TimeInterval, warn: @escaping (String) -> Void = { _ in }) {
        self.repository = repository; self.retryTime = retryTime; self.warn = warn
    }

    /// Restores `fileName` (`%f`: a bare name, never a path) to `targetPath` (`%p`).
    public func get(fileName: String, targetPath: String) throws -> GetOutcome {
        guard let name = WALFileName(fileName) else { throw WalctlError.invalidName(fileName) }
        let deadline = Date().addingTimeInterval(retryTime)
        var attempt = 0
        while true {
            do {
                return try attemptGet(name: name, targetPath: targetPath)
            } catch let e as WalctlError where e.isTransient && Date() < deadline {
                attempt += 1
                let delay = min(5.0, 0.1 * pow(2.0, Double(min(attempt, 6)))) * Double.random(in: 0.5...1.0)
                warn("\(name): \(e) (retrying in \(String(format: "%.1f", delay)) s)")
                Thread.sleep(forTimeInterval: delay)
            }
        }
    }

    func attemptGet(name: WALFileName, targetPath: String) throws -> GetOutcome {
        let meta: ArchivedFileMeta
        do {
            guard let m = try repository.meta(for: name) else { return .notFound }
            meta = m
        } catch let e as StoreError {
            throw WalctlError.store(e)
        }
        let out = try AtomicFile(path: targetPath)
        do {
            try ObjectReader(repository: repository).read(meta) { chunk in try out.write(chunk) }
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
        return .restored(meta)
    }
}
