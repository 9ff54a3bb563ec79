import Foundation

/// An optional capability of an `ObjectStore`: deleting many keys in one request (S3
/// DeleteObjects, 1000 keys a request). The five-method `ObjectStore` protocol stays as it is;
/// `deleteAll` uses this when the store has it and one `delete(key:)` per key otherwise
/// (FileStore: one unlink each, which is what a batch would do anyway).
public protocol BatchDeleting {
    /// The most keys one request may name.
    var deleteBatchLimit: Int { get }
    /// Deletes `keys` (at most `deleteBatchLimit`) in one request, with the store's retry rules for
    /// the request as a whole. Returns the keys the server reported as not deleted, with the error.
    /// Deleting a missing key is not a failure.
    func deleteBatch(_ keys: [String]) throws(StoreError) -> [(key: String, error: StoreError)]
}

/// What `deleteAll` did.
public struct DeletionCount: Equatable, Sendable {
    public var objects = 0
    public var requests = 0
    public init() {}
}

extension ObjectStore {
    /// Deletes every key of `keys` in order: batches on a `BatchDeleting` store, one request per
    /// key otherwise. A batch's failed keys alone are sent again when the failure is transient (up to `retries` more times);
    /// throws the first failure left after that. Keys before it are deleted; keys after it may not be.
    public func deleteAll(_ keys: [String], retries: Int = 4, count: inout DeletionCount) throws(StoreError) {
        guard !keys.isEmpty else { return }
        guard let batcher = self as? BatchDeleting else {
            for k in keys {
                try delete(key: k)
                count.objects += 1; count.requests += 1
            }
            return
        }
        let limit = max(1, batcher.deleteBatchLimit)
        var start = 0
        while start < keys.count {
            var pending = Array(keys[start..<min(keys.count, start + limit)])
            let total = pending.count
            var attempt = 0
            while true {
                let failed = try batcher.deleteBatch(pending)
                count.requests += 1
                if failed.isEmpty { break }
                attempt += 1
                if attempt > retries { throw failed[0].error }
                if let hard = failed.first(where: { !$0.error.isTransient }) { throw hard.error }
                pending = failed.map(\.key)
                Thread.sleep(forTimeInterval: min(2.0, 0.05 * Double(1 << min(attempt, 6))))
            }
            count.objects += total
            start += limit
        }
    }
}
