import ArgumentParser
import Foundation
import Kernels

@main
struct Squeeze: ParsableCommand {
    static func main() {
        keepFreedMemory()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // A usage or validation error is bad input too: status 2, as for every other one.
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(2)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "squeeze",
        abstract: "A research harness for computation-level redundancy on vision tokens in multimodal decoders.",
        subcommands: [SweepCommand.self, ReportCommand.self, ImportCommand.self, Train.self, TrainToy.self, Eval.self, Profile.self, Inspect.self, Graph.self, Flops.self, Time.self, DataCommand.self, Bench.self]
    )
}

/// Options every compute-heavy command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "OpenBLAS threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws { try check(threads, in: 1...1024, "--threads") }
    func apply() { BLAS.threads = threads }
}

/// Refuses an option's value outside its bounds, before anything is allocated or run.
func check<T: Comparable>(_ value: T, in range: ClosedRange<T>, _ option: String) throws {
    guard range.contains(value) else { throw ValidationError("\(option) must be \(range.lowerBound) to \(range.upperBound), got \(value)") }
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
    } catch let error as WriteError {
        // The work failed, not the input: one line, status 1, the old file untouched.
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Large tensors come and go every layer. glibc would hand each one back to the kernel
/// (mmap/munmap) and fault it in again, zeroed, on the next allocation; this keeps freed memory
/// in the heap for reuse. `mallopt` is not in Swift's Glibc module, so it is looked up by name;
/// the constants are glibc's M_TRIM_THRESHOLD (-1) and M_MMAP_MAX (-4).
private func keepFreedMemory() {
    #if os(Linux)
    typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
    let mallopt = unsafeBitCast(symbol, to: MallOpt.self)
    _ = mallopt(-4, 0)
    _ = mallopt(-1, Int32.max)
    #endif
}
