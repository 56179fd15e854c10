import Foundation

/// What a `squeeze` command printed and how it ended.
struct SqueezeResult { let status: Int32; let out: String; let err: String }

/// The built `squeeze` executable, beside the test bundle.
var squeezeBinary: URL {
    let products = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }
        .map { $0.bundleURL.deletingLastPathComponent() } ?? Bundle.main.bundleURL
    return products.appendingPathComponent("squeeze")
}

/// Runs `squeeze` as a user does and waits for it.
func runSqueeze(_ arguments: [String]) throws -> SqueezeResult {
    let process = Process()
    process.executableURL = squeezeBinary
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Both pipes drained at once: a long stderr must not block the child while stdout is read.
    final class Drained: @unchecked Sendable { var data = Data() }   // written before the semaphore, read after
    let e = Drained(), drained = DispatchSemaphore(value: 0)
    DispatchQueue.global().async { e.data = err.fileHandleForReading.readDataToEndOfFile(); drained.signal() }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    drained.wait()
    process.waitUntilExit()
    return SqueezeResult(status: process.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e.data, as: UTF8.self))
}
