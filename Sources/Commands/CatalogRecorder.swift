import Storage

/// Records archived files into the catalog (wired once the catalog lands).
enum CatalogRecorder {
    static func make(config: Configuration, warn: @escaping (String) -> Void) -> ArchiveRecorder? { nil }
}
