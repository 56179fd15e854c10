import Foundation
import TestSupport
import XCTest

/// Bad input and faults, as a hostile user hands them to `squeeze` — cases as data, one runner
/// (as ggml's test-backend-ops). Every case must end with its exit status (2 for bad input, 1
/// for work that failed), one short message naming the file or option and the place, and no
/// file written or changed: the runner compares the case's folder before and after.
final class FaultCatalogueTests: XCTestCase {
    struct Fault {
        /// The command; `$D` is the case's own folder.
        let arguments: [String]
        /// Files the case starts with, relative to `$D`.
        var files: [String: Data] = [:]
        var status: Int32 = 2
        /// What the message must say (`$D` replaced), each part.
        let says: [String]

        init(_ arguments: [String], files: [String: Data] = [:], status: Int32 = 2, says: String...) {
            (self.arguments, self.files, self.status, self.says) = (arguments, files, status, says)
        }
    }

    static let long = "proxyv(r=2)@from:1+" + String(repeating: "x", count: 100_000)
    static func text(_ s: String) -> Data { Data(s.utf8) }
    /// A safetensors file: an 8-byte little-endian header length, the header, the payload.
    static func safetensors(header: String, payload: Data = Data()) -> Data {
        var length = UInt64(header.utf8.count).littleEndian
        return Data(bytes: &length, count: 8) + Data(header.utf8) + payload
    }
    static let manifestHead = "preset: tiny\nstore: $D/store\nresults: $D/results\n"
    static func manifest(_ body: String) -> [String: Data] { ["m.yaml": text(manifestHead + body)] }
    static func lmms(_ json: String) -> [String: Data] { ["r.json": text(json)] }
    static let importing = ["import", "lmms-eval", "$D/r.json", "--model", "vicuna-7b", "--variant", "baseline", "--store", "$D/store"]

    static let catalogue: [Fault] = [
        // Command-line options: bounds before anything is allocated or run.
        Fault(["flops", "--grid", "0"], says: "--grid must be 1 to 512, got 0"),
        Fault(["flops", "--grid=-4"], says: "--grid must be 1 to 512, got -4"),
        Fault(["flops", "--grid", "3037000500"], says: "--grid must be 1 to 512"),
        Fault(["flops", "--grid", "100000000"], says: "--grid must be 1 to 512"),
        Fault(["flops", "--crops=-1"], says: "--crops must be 1 to 16"),
        Fault(["flops", "--text=-5"], says: "--text must be 0 to 100000"),
        Fault(["flops", "--kv-bytes=-1"], says: "--kv-bytes must be 1 to 8"),
        Fault(["flops", "--decode-after=-3"], says: "--decode-after must be 0 to 1000000"),
        Fault(["flops", "--model", "small", "--grid", "8", "--variant", "skip-vattn-ffn(mlp=9223372036854775807)"], says: "exceeds 16 × the hidden size"),
        Fault(["flops", "--variant", "proxyv-learned(n=9223372036854775807)"], says: "proxyv-learned needs 1 to 576 proxies"),
        Fault(["flops", "--variant", "proxyv(r=0)"], says: "expected a reduce factor r ≥ 1"),
        Fault(["flops", "--variant", "proxyv(r=2,r=4)"], says: "column 12: expected 'r' once"),
        Fault(["flops", "--variant", FaultCatalogueTests.long], says: "(100019 characters)"),
        Fault(["graph", "--grid", "0"], says: "--grid must be 1 to 512"),
        Fault(["time", "--threads", "0"], says: "--threads must be 1 to 1024"),
        Fault(["eval", "/nonexistent", "--samples", "0"], says: "--samples must be 1 to 100000"),
        Fault(["eval", "/nonexistent"], says: "/nonexistent/model.safetensors"),
        Fault(["data", "show", "--task", "ocr", "--side", "7"], says: "--side must be 16 to 2048"),
        Fault(["data", "stats", "--samples", "0"], says: "--samples must be 1 to 100000"),
        Fault(["train-toy", "--task", "copy", "--batch-size", "0", "--out", "$D/out"], says: "--batch-size must be 1 to 4096"),
        Fault(["train-toy", "--task", "copy", "--learning-rate", "nan", "--out", "$D/out"], says: "--learning-rate must be a positive number"),
        Fault(["train", "--steps", "20000000", "--out", "$D/out"], says: "--steps must be 0 to 10000000"),
        Fault(["train", "--variant-stage", "3", "--out", "$D/out"], says: "--variant-stage 0 to 2"),
        Fault(["report", "--store", "/nonexistent-store"], says: "/nonexistent-store: no run store there"),
        Fault(["sweep", "/nonexistent.yaml"], says: "/nonexistent.yaml"),
        Fault(["sweep", "Experiments/tiny.yaml", "--slurm", "--throttle", "0"], says: "--throttle must be 1 to 100000"),
        Fault(["sweep", "Experiments/tiny.yaml", "--slurm", "--time", "2 h"], says: "--time must be one word without quotes"),
        Fault(["sweep", "Experiments/tiny.yaml", "--partition", "cpu"], says: "--partition, --account, --throttle, --time and --mem go with --slurm"),
        Fault(["flops", "--no-such-option"], says: "Unknown option '--no-such-option'"),
        Fault(["sweep", "Experiments/tiny.yaml", "--slurm", "--throttle", "0"], says: "--throttle must be 1 to 100000"),
        Fault(["sweep", "Experiments/tiny.yaml", "--slurm", "--time", "2 h"], says: "--time must be one word without quotes"),
        Fault(["sweep", "Experiments/tiny.yaml", "--partition", "cpu"], says: "--partition, --account, --throttle, --time and --mem go with --slurm"),
        Fault(["sweep", "Experiments/tiny.yaml", "--jobs", "0"], says: "--jobs must be at least 1"),
        Fault(["train", "--preset", "huge", "--out", "$D/out"], says: "huge"),
        // Within every bound, but far beyond any machine's memory: refused before it is allocated.
        Fault(["train", "--preset", "small", "--grid", "512", "--out", "$D/out"], says: "$D/out: a step of this run would need about", "GiB of memory"),
        Fault(["graph", "--variant", "proxyv(r=4)@form:1"], says: "column 13: expected a schedule"),
        Fault(["flops", "--variant", "mask-vv@layers:5..<2"], says: "mask-vv@layers:5..<2"),
        Fault(["flops", "--variant", ""], says: "expected a variant"),

        // Manifests: the file, line and column.
        Fault(["sweep", "$D/m.yaml"], files: manifest("trainig: {steps: 3}\n"), says: "$D/m.yaml:4:1: unknown key 'trainig'"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("training: {steps: 9223372036854775807}\n"), says: "$D/m.yaml:4:19: training.steps: expected an integer from 1 to 10000000"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("evaluation: {samples: -1}\n"), says: "$D/m.yaml:4:23: evaluation.samples"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("sweep: [\n"), says: "$D/m.yaml:5:1: not valid YAML"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("variant: 'skip-vattn@from:9'\n"), says: "$D/m.yaml:4:10: variant 'skip-vattn@from:9'"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("evaluation: {benchmarks: [docvqa]}\n"), says: "$D/m.yaml:4:27: evaluation.benchmarks: unknown benchmark 'docvqa'"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("sweep: {seed: 3}\n"), says: "$D/m.yaml:4:15: sweep.seed: expected a non-empty list"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("extends: nowhere.yaml\n"), says: "$D/m.yaml:4:10: extends 'nowhere.yaml': no such manifest"),
        Fault(["sweep", "$D/m.yaml"], files: ["m.yaml": text("extends: m.yaml\n")], says: "extends itself"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("baseline: other\n"), says: "$D/m.yaml:4:11: baseline 'other'"),
        Fault(["sweep", "$D/m.yaml"], files: manifest("sweep: {seed: [" + (1...400).map(String.init).joined(separator: ",") + "], schedule: [" + (0..<300).map { _ in "'from:1'" }.joined(separator: ",") + "]}\n"),
              says: "the sweep's grid has 120000 combinations; at most 100000"),
        Fault(["sweep", "$D/m.yaml"], files: ["m.yaml": Data([0xFF, 0xFE, 0x00, 0x41])], says: "$D/m.yaml:1:1: cannot read the manifest"),
        Fault(["sweep", "$D/m.yaml"], files: ["m.yaml": text("extends: /dev/zero\n")], says: "/dev/zero:1:1: cannot read the manifest"),
        Fault(["sweep", "$D"], says: "$D:1:1: cannot read the manifest"),
        Fault(["sweep", "$D/m.yaml"], files: ["m.yaml": text("preset: tiny\nstore: $D/afile\n"), "afile": text("a file")], says: "$D/m.yaml:2:8: '$D/afile' is a file; expected a directory to write into"),
        Fault(["sweep", "$D/m.yaml", "--dry-run"], files: manifest("vision: {crops: 7}\n"), says: "$D/m.yaml:4:17: vision.crops"),

        // Checkpoints.
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": Data([0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0x7B])], says: "$D/x.safetensors", "past the end"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": Data([1, 2])], says: "$D/x.safetensors: is 2 bytes long"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": safetensors(header: "{not json")], says: "$D/x.safetensors: header (bytes 8..<17) is not a JSON object"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": safetensors(header: #"{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, payload: Data(count: 8))], says: "tensor 'w': dtype F64 is not supported"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": safetensors(header: #"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, payload: Data(count: 4))], says: "tensor 'w': negative shape or offsets"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": safetensors(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, payload: Data(count: 8))], says: "tensor 'w': 8 bytes do not hold a F32 tensor of shape [3]"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": safetensors(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, payload: Data(count: 4))], says: "tensor 'w': data ends at byte 8 but only 4 bytes follow"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": safetensors(header: #"{"__metadata__":{"a":1}}"#)], says: "__metadata__ must map strings to strings"),
        Fault(["inspect", "$D/x.safetensors"], files: ["x.safetensors": safetensors(header: #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, payload: Data(count: 4))], says: "tensor 'w': 4 bytes do not hold"),
        Fault(["inspect", "$D"], says: "$D: cannot be read"),
        Fault(["train-toy", "--task", "copy", "--init-from", "$D/x.safetensors", "--steps", "1", "--out", "$D/out"],
              files: ["x.safetensors": safetensors(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, payload: Data(count: 4))], says: "$D/x.safetensors"),
        Fault(["eval", "$D/run"], files: ["run/model.safetensors": safetensors(header: #"{"__metadata__":{"squeeze.run":"{\"preset\":\"tiny\"}"}}"#)], says: "$D/run/model.safetensors"),
        Fault(["eval", "$D/run"], files: ["run/model.safetensors": safetensors(header: #"{"__metadata__":{"squeeze.run":"{\"batchSize\": 2, \"checkpointEvery\": 5, \"crops\": 2, \"features\": 64, \"grid\": 0, \"languageLearningRate\": 0.001, \"languageSteps\": 0, \"lossWeights\": {}, \"patch\": 4, \"preset\": \"tiny\", \"seed\": 1, \"stage1LearningRate\": 0.003, \"stage1Steps\": 2, \"stage2LearningRate\": 0.003, \"stage2Steps\": 20, \"turns\": 6, \"variant\": \"baseline\"}"}}"#)],
              says: "$D/run/model.safetensors: its run configuration ('squeeze.run'): grid 0 is outside 1 to 512"),

        // Model configurations (config.json).
        Fault(["flops", "--config", "$D/c.json"], files: ["c.json": text("not json")], says: "$D/c.json: is not a JSON object"),
        Fault(["flops", "--config", "$D/c.json"], files: ["c.json": text(#"{"hidden_size": 128}"#)], says: "$D/c.json: key 'num_attention_heads'"),
        Fault(["flops", "--config", "$D/c.json"], files: ["c.json": text(#"{"hidden_size": 1099511627776, "num_hidden_layers": 32, "num_attention_heads": 32, "intermediate_size": 11008, "vocab_size": 32000}"#)], says: "$D/c.json: hidden must be 1 to 65536"),
        Fault(["flops", "--config", "$D/c.json"], files: ["c.json": text(#"{"hidden_size": 128, "num_hidden_layers": 1000000000, "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 100}"#)], says: "$D/c.json: layers must be 1 to 1024"),
        Fault(["flops", "--config", "$D"], says: "$D: cannot be read"),

        // lmms-eval results.
        Fault(importing, files: lmms("not json"), says: "$D/r.json: is not a JSON object"),
        Fault(importing, files: lmms(#"{"config": {}}"#), says: "$D/r.json: has no \"results\" object"),
        Fault(importing, files: lmms(#"{"results": {"docvqa_val": {"anls,none": 1e308}}}"#), says: "$D/r.json"),
        Fault(importing, files: lmms(#"{"results": {"docvqa_val": {"anls,none": -0.5}}}"#), says: "$D/r.json"),
        Fault(importing, files: lmms(#"{"results": {"a/b": {"anls,none": 0.5}}}"#), says: "$D/r.json: results: 'a/b' is not a task name"),
        Fault(importing, files: lmms(#"{"results": {"docvqa_val": 3}}"#), says: "$D/r.json: results.docvqa_val is not an object of metrics"),
        Fault(["import", "lmms-eval", "$D/r.json", "--model", "vicuna-7b", "--mode", "weird", "--store", "$D/store"], files: lmms(#"{"results": {"docvqa_val": {"anls,none": 0.5}}}"#), says: "--mode 'weird'"),
        Fault(["import", "lmms-eval", "$D/r.json", "--model", "gpt-9", "--store", "$D/store"], files: lmms(#"{"results": {"docvqa_val": {"anls,none": 0.5}}}"#), says: "--model 'gpt-9' is not a paper model"),

        // Run stores and reports.
        Fault(["report", "--store", "$D/afile", "--out", "$D/results"], files: ["afile": text("x")], says: "$D/afile: no run store there"),
        Fault(["report", "--store", "$D/store", "--out", "$D/afile"], files: ["afile": text("x"), "store/abc.h5": text("junk")], says: "$D/afile: is a file, not a directory for the reports"),
    ]

    func testEveryFaultEndsWithItsStatusAMessageAndNoFileChanged() throws {
        XCTAssertGreaterThanOrEqual(Self.catalogue.count, 80)
        for (i, fault) in Self.catalogue.enumerated() {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-fault-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: folder) }
            for (name, data) in fault.files {
                let path = folder + "/" + name
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                // Text files name the case's folder as $D.
                let text = String(data: data, encoding: .utf8)
                try (text.map { Data($0.replacingOccurrences(of: "$D", with: folder).utf8) } ?? data).write(to: URL(fileURLWithPath: path))
            }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let before = try snapshot(folder)
            let arguments = fault.arguments.map { $0.replacingOccurrences(of: "$D", with: folder) }
            let name = "case \(i): squeeze \(arguments.joined(separator: " ").prefix(120))"
            let r = try runSqueeze(arguments)
            XCTAssertEqual(r.status, fault.status, "\(name)\n\(r.err.prefix(400))")
            for part in fault.says.map({ $0.replacingOccurrences(of: "$D", with: folder) }) {
                XCTAssertTrue(r.err.contains(part), "\(name): expected '\(part)' in\n\(r.err.prefix(400))")
            }
            XCTAssertLessThan(r.err.utf8.count, 4000, "\(name): one short message")
            XCTAssertFalse(r.err.contains("Fatal error") || r.err.contains("NSCocoaErrorDomain"), "\(name)\n\(r.err.prefix(400))")
            XCTAssertEqual(try snapshot(folder), before, "\(name): files written or changed")
        }
    }

    /// A store and a results directory on a read-only file system: the sweep and the report each
    /// stop with one line naming the directory and the reason, status 1 (the work failed, the
    /// input was fine), before running anything.
    func testAReadOnlyStoreIsNamedWithTheReason() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-readonly-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        guard let unmount = mountSmallDisk(at: folder + "/disk", bytes: 1 << 20, readOnly: true) else {
            throw XCTSkip("needs root to mount a read-only tmpfs")
        }
        defer { unmount() }
        let manifest = folder + "/m.yaml"
        try "preset: tiny\nstore: \(folder)/disk/store\nresults: \(folder)/disk/results\ntraining: {steps: 1, stage1_steps: 1, batch_size: 2}\n"
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let sweep = try runSqueeze(["sweep", manifest, "--threads", "1"])
        XCTAssertEqual(sweep.status, 1, sweep.out + sweep.err)
        XCTAssertTrue(sweep.err.contains("\(folder)/disk/store/logs: cannot be made a directory (read-only file system)"), sweep.err)
        XCTAssertFalse(sweep.out.contains("started"), "nothing ran: \(sweep.out)")
        try FileManager.default.createDirectory(atPath: folder + "/store", withIntermediateDirectories: true)
        let report = try runSqueeze(["report", "--store", folder + "/store", "--out", folder + "/disk/results"])
        XCTAssertEqual(report.status, 1, report.err)
        XCTAssertTrue(report.err.contains("\(folder)/disk/results: cannot be made a directory (read-only file system)"), report.err)
        XCTAssertFalse((sweep.err + report.err).contains("NSCocoaErrorDomain"))
    }

    /// The fuzzers' committed corpus (Tests/Fuzz, what scripts/fuzz.sh found and kept) runs
    /// through each parser without a trap, a hang or an exhausted memory.
    func testTheFuzzCorpusRunsClean() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fuzz").standardizedFileURL.path
        for target in ["variant", "manifest", "safetensors", "lmms-eval"] {
            let process = Process(), out = Pipe()
            process.executableURL = squeezeBinary.deletingLastPathComponent().appendingPathComponent("squeeze-fuzz")
            process.arguments = [target, "\(corpus)/\(target)"]
            (process.standardOutput, process.standardError) = (out, out)
            try process.run()
            let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "\(target):\n\(said.suffix(2000))")
            XCTAssertTrue(said.contains("\(target): ") && said.contains(" inputs ran clean"), said)
            let count = Int(said.components(separatedBy: "\(target): ").last!.prefix { $0.isNumber }) ?? 0
            XCTAssertGreaterThanOrEqual(count, 2, "\(target)'s corpus is there")
        }
    }

    /// Every file under a folder with its bytes.
    private func snapshot(_ folder: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for case let name as String in FileManager.default.enumerator(atPath: folder) ?? FileManager.DirectoryEnumerator() {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isDirectory)
            files[name] = isDirectory.boolValue ? Data("<directory>".utf8) : FileManager.default.contents(atPath: folder + "/" + name)
        }
        return files
    }
}
