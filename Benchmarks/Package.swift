// swift-tools-version:6.1
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory (`main`, `walctl`, a CI clone's folder...), and
// `.product(package:)` must use that name.
let walctl = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

// walctl's in-process benchmarks (package-benchmark). A separate package so that `swift build` of
// walctl itself never compiles the benchmark harness. Run: `cd Benchmarks && swift package benchmark`.
// Target names must not collide with walctl's own targets (one package graph): hence `CatalogBenchmarks`.
let package = Package(
    name: "walctl-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "WALScan",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "WALFormat", package: walctl),
                .product(name: "Codec", package: walctl),
            ],
            path: "Benchmarks/WALScan",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "CatalogBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Catalog", package: walctl),
                .product(name: "WALFormat", package: walctl),
            ],
            path: "Benchmarks/Catalog",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
