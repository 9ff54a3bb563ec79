import Storage

/// Builds the S3 store from `s3://bucket/prefix` and the `s3-*` settings.
func makeS3Store(url: String, config: Configuration) throws -> ObjectStore {
    throw WalctlError.configuration(.invalidValue(name: "repository", value: url, expected: "file:// (the S3 store is not built yet)"))
}
