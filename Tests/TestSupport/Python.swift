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

/// A page loaded in headless Chromium (Debian's `chromium`, which README's test set-up installs):
/// the DOM after loading and Chromium's log, where the page's console messages appear as
/// `CONSOLE` lines. Nil where Chromium is not installed.
public func loadInChromium(_ path: String) throws -> (dom: String, log: String)? {
    guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) else { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: chromium)
    process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--dump-dom",
                         URL(fileURLWithPath: path).absoluteString]
    // The log goes to a file, so that neither of Chromium's outputs can fill a pipe and block it.
    let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID()).log")
    FileManager.default.createFile(atPath: logPath.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: logPath) }
    let out = Pipe()
    (process.standardOutput, process.standardError) = (out, try FileHandle(forWritingTo: logPath))
    try process.run()
    let dom = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let log = try Data(contentsOf: logPath)
    return (String(decoding: dom, as: UTF8.self), String(decoding: log, as: UTF8.self))
}
