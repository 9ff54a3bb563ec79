import LocalFS

extension WalctlError {
    /// walctl's form of a local-filesystem failure: `file-io` with the operation, path and system
    /// error, or `refused` for what the operator must fix (a directory someone else owns).
    public init(_ e: LocalFSError) {
        switch e {
        case .io(let op, let p, let n): self = .file(operation: op, path: p, errno: n)
        case .refused(let m): self = .refused(m)
        }
    }
}
