// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Squeeze",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "squeeze", targets: ["squeeze"]),
        .executable(name: "squeeze-fuzz", targets: ["squeeze-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // System libraries, found through pkg-config (Debian: libopenblas-dev, libhdf5-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),

        .target(name: "Kernels", dependencies: ["CBLAS"]),
        .target(name: "LayerGraph", dependencies: ["Kernels"]),
        .target(name: "Decoder", dependencies: ["Kernels", "LayerGraph"]),
        .target(name: "Accounting", dependencies: ["Kernels", "LayerGraph"],
                resources: [.copy("Resources/paper")]),
        .target(name: "Benchmarks", dependencies: ["Kernels", "LayerGraph"]),
        .target(name: "Training", dependencies: ["Kernels", "LayerGraph", "Decoder", "Benchmarks"]),
        .target(name: "HDF5", dependencies: ["CHDF5"]),
        .target(name: "Experiments", dependencies: [
            "Kernels", "LayerGraph", "Decoder", "Accounting", "Benchmarks", "Training", "HDF5",
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "squeeze", dependencies: [
            "Kernels", "LayerGraph", "Decoder", "Accounting", "Benchmarks", "Training", "Experiments",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The parsers of user input under libFuzzer (scripts/fuzz.sh), or replaying a corpus.
        .executableTarget(name: "squeeze-fuzz", dependencies: ["LayerGraph", "Decoder", "Accounting", "Experiments"]),

        .target(name: "TestSupport", dependencies: ["Kernels", "LayerGraph"], path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
        .testTarget(name: "LayerGraphTests", dependencies: ["LayerGraph"]),
        .testTarget(name: "DecoderTests", dependencies: ["Decoder", "Training", "TestSupport"],
                    resources: [.copy("Reference")]),
        .testTarget(name: "TrainingTests", dependencies: ["Training"]),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "TestSupport"]),
        .testTarget(name: "AccountingTests", dependencies: ["Accounting", "Decoder", "LayerGraph", "Kernels", "TestSupport"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5"]),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments", "HDF5", "Decoder", "LayerGraph", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["squeeze", "HDF5", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
