import Foundation

/// Runs a Python snippet (python3 with numpy and safetensors, which README's test command
/// installs) and returns what it printed; a failure throws with Python's error output.
public func runPython(_ script: String, arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile(), errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw NSError(domain: "python", code: Int(process.terminationStatus),
                      userInfo: [NSLocalizedDescriptionKey: String(decoding: errors, as: UTF8.self)])
    }
    return String(decoding: output, as: UTF8.self)
}

/// A small tmpfs mounted at `path` for tests of a full disk; returns what unmounts it, or nil
/// where it cannot be mounted (not root, no mount).
public func mountSmallDisk(at path: String, bytes: Int, readOnly: Bool = false) -> (() -> Void)? {
    func run(_ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    guard getuid() == 0, run(["mount", "-t", "tmpfs", "-o", "size=\(bytes)" + (readOnly ? ",ro" : ""), "tmpfs", path]) else { return nil }
    return { _ = run(["umount", "-l", path]) }
}

/// Writes into `path` until the disk is full.
public func fillDisk(_ path: String) {
    let descriptor = open(path, O_CREAT | O_WRONLY, 0o644)
    defer { close(descriptor) }
    let block = [UInt8](repeating: 1, count: 4096)
    while write(descriptor, block, block.count) > 0 {}
    var byte: UInt8 = 1
    while write(descriptor, &byte, 1) > 0 {}
}
