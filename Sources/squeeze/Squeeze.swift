import ArgumentParser
import Foundation
import Kernels

@main
struct Squeeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "squeeze",
        abstract: "A research harness for computation-level redundancy on vision tokens in multimodal decoders.",
        subcommands: [Train.self, Inspect.self, Graph.self, Flops.self, Time.self, Bench.self]
    )
}

/// Options every compute-heavy command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "OpenBLAS threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func apply() { BLAS.threads = max(1, threads) }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// Runs a command body; bad input is reported in one line and ends the command with status 2.
func reportingBadInput<T>(_ body: () throws -> T) throws -> T {
    do { return try body() }
    catch let error as InputError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(2)
    }
}
