import Foundation

// squeeze-fuzz TARGET [libFuzzer options] [CORPUS…]
//
// Built with `-Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer` (scripts/fuzz.sh), it is a
// coverage-guided libFuzzer over the target's parser. Built plainly, as by `swift build`, it
// replays the files and directories given — a corpus — through the target once each, which is
// how the tests check that the committed corpus still runs clean.

let usage = "usage: squeeze-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) [options] [corpus…]\n"
// libFuzzer runs this program again for -merge and -jobs, with its own options only: the target
// then comes from the environment the first run set.
let named = CommandLine.arguments.count >= 2 ? FuzzTarget(rawValue: CommandLine.arguments[1]) : nil
guard let target = named ?? ProcessInfo.processInfo.environment["SQUEEZE_FUZZ_TARGET"].flatMap(FuzzTarget.init) else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
setenv("SQUEEZE_FUZZ_TARGET", target.rawValue, 1)
let options = Array(CommandLine.arguments.dropFirst(named == nil ? 1 : 2))

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) var selected = target
// libFuzzer sees the program name and the options, not the target's name.
var arguments = [CommandLine.arguments[0]] + options
var argc = Int32(arguments.count)
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = UnsafeMutablePointer.allocate(capacity: arguments.count + 1)
for (i, a) in arguments.enumerated() { argv![i] = strdup(a) }
argv![arguments.count] = nil
exit(LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
    selected.run(bytes.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
})
#else
var inputs: [String] = []
for path in options {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        FileHandle.standardError.write(Data("squeeze-fuzz: \(path): no such file or directory\n".utf8))
        exit(2)
    }
    inputs += isDirectory.boolValue
        ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
        : [path]
}
for input in inputs {
    target.run(FileManager.default.contents(atPath: input) ?? Data())
}
print("\(target.rawValue): \(inputs.count) inputs ran clean")
#endif
