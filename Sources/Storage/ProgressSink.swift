/// What a work loop below Commands (the catalog's rebuild, a store's reads) feeds while it works:
/// the total once known, then the amount done. Commands' `WorkProgress` is the one implementation
/// (docs/architecture.md, "Progress"); every method may be called from any thread.
public protocol ProgressSink: AnyObject, Sendable {
    /// The total amount of work (bytes or objects), nil when unknown.
    func setTotal(_ total: Int64?)
    /// `n` more done.
    func add(_ n: Int64)
}
