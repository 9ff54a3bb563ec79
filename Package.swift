// swift-tools-version:6.1
import PackageDescription

/// walctl: a point-in-time-recovery WAL archive manager for PostgreSQL.
///
/// Modules point downwards only (see docs/architecture.md):
/// C shims, LocalFS -> WALFormat, Codec, HTTP -> Storage -> Catalog, Planner, PGClient -> Commands -> walctl-core;
/// LocalFS -> FastPath -> walctl, walctl-fast (the front).
let package = Package(
    name: "walctl",
    platforms: [.macOS(.v13)],
    products: [
        // `walctl`: the start-up-cheap front operators and PostgreSQL run (docs/architecture.md, "Two
        // executables"): answers archive-push / archive-get itself when it can, else execs
        // `walctl-core` from its own directory. `walctl-fast`: the same front under its older name.
        .executable(name: "walctl", targets: ["walctl"]),
        .executable(name: "walctl-fast", targets: ["walctl-fast"]),
        // The full binary: every command.
        .executable(name: "walctl-core", targets: ["walctl-core"]),
        .library(name: "WALFormat", targets: ["WALFormat"]),
        .library(name: "Codec", targets: ["Codec"]),
        .library(name: "Storage", targets: ["Storage"]),
        .library(name: "Catalog", targets: ["Catalog"]),
        .library(name: "Planner", targets: ["Planner"]),
        .library(name: "Commands", targets: ["Commands"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C libraries, each fenced into one system-library target.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // libcurl, libpq and libcrypto: headers only, never linked. CLazyLoad defines the functions
        // walctl calls and dlopen()s the library on first use, so start-up maps none of them
        // (no pkgConfig here: it would add -lcurl / -lpq / -lcrypto to the link).
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLibPQ", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "CLazyLoad"),
        // Hardware CRC-32C (SSE4.2) with a portable fallback.
        .target(name: "CCRC32C"),

        // Foundation-free (Glibc only): the one local-filesystem layer every writer of walctl and
        // walctl-fast goes through (docs/architecture.md, "What may write a file, and how").
        .target(name: "LocalFS"),
        .target(name: "WALFormat", dependencies: ["CCRC32C"]),
        .target(name: "Codec", dependencies: ["CZstd", "CZlib"]),
        .target(name: "HTTP", dependencies: ["CCurl", "CLazyLoad"]),
        .target(name: "Storage", dependencies: ["LocalFS", "HTTP", "CCrypto", "CLazyLoad", "WALFormat", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Catalog", dependencies: ["CSQLite", "LocalFS", "WALFormat", "Storage"]),
        .target(name: "Planner", dependencies: ["WALFormat", "Catalog"]),
        .target(name: "PGClient", dependencies: ["CLibPQ", "CLazyLoad", "WALFormat"]),
        .target(name: "Commands", dependencies: [
            "LocalFS", "WALFormat", "FastPath", "Codec", "Storage", "Catalog", "Planner", "PGClient",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "walctl-core", dependencies: [
            "Commands", "WALFormat", "Catalog", "Planner", "Codec", "FastPath",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Foundation-free (Glibc only): the fast front's decisions, shared with its tests.
        .target(name: "FastPath", dependencies: ["LocalFS", "Codec", "CCRC32C"]),
        // Fully static (no dynamic loader, no relocations at start): PostgreSQL starts it once per
        // WAL file, and it imports Glibc only. ~0.7 ms instead of ~1.5 ms per start (docs/benchmarks.md).
        .executableTarget(name: "walctl", dependencies: ["FastPath"],
                          linkerSettings: [.unsafeFlags(["-static-executable"], .when(platforms: [.linux]))]),
        .executableTarget(name: "walctl-fast", dependencies: ["FastPath"],
                          linkerSettings: [.unsafeFlags(["-static-executable"], .when(platforms: [.linux]))]),
        .target(name: "TestSupport", dependencies: ["WALFormat", "Storage"]),

        .testTarget(name: "LocalFSTests", dependencies: ["LocalFS"]),
        .testTarget(name: "WALFormatTests", dependencies: ["WALFormat", "CCRC32C", "TestSupport"]),
        .testTarget(name: "CodecTests", dependencies: ["Codec"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "TestSupport"]),
        .testTarget(name: "CatalogTests", dependencies: ["Catalog", "TestSupport"]),
        .testTarget(name: "PlannerTests", dependencies: ["Planner", "TestSupport"]),
        .testTarget(name: "CommandsTests", dependencies: ["Commands", "TestSupport", "Codec", "FastPath"]),
        .testTarget(name: "FastPathTests", dependencies: ["FastPath", "Commands", "Storage", "WALFormat", "Codec"]),
    ],
    swiftLanguageModes: [.v5]
)
