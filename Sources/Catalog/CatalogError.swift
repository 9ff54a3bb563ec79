/// Catalog failures. Each message names the catalog file and what to do about it.
public enum CatalogError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The catalog file (or its directory) cannot be opened or created.
    case cannotOpen(path: String, message: String)
    /// Another process held the catalog's write lock longer than the busy timeout and retries.
    case busy(path: String, message: String)
    /// The file is not a SQLite database or is damaged.
    case corrupt(path: String, message: String)
    /// The catalog was written by a newer walctl (schema version above the one this build knows).
    case newerSchema(path: String, found: Int, supported: Int)
    /// The catalog already holds this repository URL with another segment size or system.
    case repositoryMismatch(path: String, url: String, message: String)
    /// A name or value handed to the catalog is not valid for it.
    case invalidInput(String)
    /// Reading the repository during rebuild or check failed.
    case repository(String)
    /// Any other SQLite error.
    case sqlite(path: String, code: Int32, message: String)

    /// A stable, named code for the error table in docs/.
    public var code: String {
        switch self {
        case .cannotOpen: return "catalog-open"
        case .busy: return "catalog-busy"
        case .corrupt: return "catalog-corrupt"
        case .newerSchema: return "catalog-newer-schema"
        case .repositoryMismatch: return "catalog-repository-mismatch"
        case .invalidInput: return "catalog-invalid-input"
        case .repository: return "catalog-repository-read"
        case .sqlite: return "catalog-sqlite"
        }
    }

    public var description: String {
        switch self {
        case .cannotOpen(let p, let m):
            return "cannot open the catalog \(p): \(m) (check that the directory exists and is writable by the walctl user, or move the catalog with the `catalog` setting / WALCTL_CATALOG)"
        case .busy(let p, let m):
            return "the catalog \(p) stayed locked by another walctl process: \(m) (retry; if it persists, look for a hung walctl process)"
        case .corrupt(let p, let m):
            return "the catalog \(p) is damaged: \(m) (delete it and run `walctl catalog rebuild`: the repository is the source of truth)"
        case .newerSchema(let p, let f, let s):
            return "the catalog \(p) has schema version \(f), this walctl knows up to \(s): upgrade walctl, or point it at another catalog file"
        case .repositoryMismatch(let p, let u, let m):
            return "the catalog \(p) already describes repository \(u) differently: \(m) (run `walctl catalog rebuild`)"
        case .invalidInput(let m): return m
        case .repository(let m): return "reading the repository failed: \(m)"
        case .sqlite(let p, let c, let m): return "catalog \(p): SQLite error \(c): \(m)"
        }
    }
}
