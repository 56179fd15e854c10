import Decoder
import Foundation
import Kernels
import LayerGraph
import TestSupport
import XCTest

final class CheckpointTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-checkpoint-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func testRoundTripKeepsConfigurationNamesAndValues() throws {
        let config = LlamaConfig(hidden: 16, layers: 2, heads: 2, kvHeads: 1, ffn: 24, vocab: 11, tiedEmbeddings: true)
        let model = LlamaModel(config: config, seed: 3)
        try model.save(to: path("m.safetensors"))
        let loaded = try LlamaModel.load(from: path("m.safetensors"))
        XCTAssertEqual(loaded.config, config)
        XCTAssertNil(loaded.lmHead, "tied: no separate head")
        XCTAssertEqual(loaded.parameters.map(\.name), model.parameters.map(\.name))
        for (a, b) in zip(loaded.parameters, model.parameters) { XCTAssertEqual(a.value.array, b.value.array, a.name) }
        XCTAssertTrue(model.parameters.map(\.name).contains("model.layers.1.self_attn.q_proj.weight"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("m.safetensors.partial")))
    }

    /// A file Squeeze writes opens in Python's `safetensors` package with the same names, shapes and values.
    func testPythonSafetensorsReadsSqueezeFiles() throws {
        let model = LlamaModel(config: LlamaConfig(hidden: 8, layers: 1, heads: 2, kvHeads: 2, ffn: 12, vocab: 5), seed: 4)
        try model.save(to: path("py.safetensors"))
        let script = """
        import json, sys
        from safetensors.numpy import load_file
        from safetensors import safe_open
        t = load_file(sys.argv[1])
        with safe_open(sys.argv[1], "np") as f: meta = f.metadata()
        print(json.dumps({"config": json.loads(meta["squeeze.config"]),
                          "tensors": {k: [list(v.shape), str(v.dtype), float(v.astype("float64").sum())] for k, v in t.items()}}))
        """
        let output = try runPython(script, arguments: [path("py.safetensors")])
        let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [String: Any]
        XCTAssertEqual((json["config"] as! [String: Any])["hidden"] as? Int, 8)
        let tensors = json["tensors"] as! [String: [Any]]
        XCTAssertEqual(Set(tensors.keys), Set(model.parameters.map(\.name)))
        for p in model.parameters {
            let entry = tensors[p.name]!
            XCTAssertEqual(entry[0] as? [Int], p.shape, p.name)
            XCTAssertEqual(entry[1] as? String, "float32", p.name)
            XCTAssertEqual(entry[2] as! Double, p.value.array.reduce(0.0) { $0 + Double($1) }, accuracy: 1e-4, p.name)
        }
    }

    /// F16, BF16 and I64 tensors that Python wrote widen to Float32 (and Int) on load.
    func testHalfPrecisionTensorsWidenOnLoad() throws {
        let script = """
        import sys, numpy as np
        from safetensors.numpy import save_file
        save_file({"h": np.array([1.5, -2.25, 65504], np.float16), "i": np.array([3, -7], np.int64),
                   "big": np.array([5, 2**40], np.int64)}, sys.argv[1])
        """
        _ = try runPython(script, arguments: [path("half.safetensors")])
        let file = try SafetensorsFile(path: path("half.safetensors"))
        XCTAssertEqual(try file.tensor("h").array, [1.5, -2.25, 65504])
        XCTAssertEqual(try file.integers("i"), [3, -7])
        // A token id beyond 32 bits is refused, naming the element (the fuzzer found it trapped).
        XCTAssertThrowsError(try file.integers("big")) { error in
            XCTAssertTrue("\(error)".contains("tensor 'big': element 1 is 1099511627776, outside the 32-bit range"), "\(error)")
        }
        // BF16 (numpy has none): the top half of each float32's bits, written by hand.
        let bf16 = """
        import json, struct, sys
        values = [1.5, -2.25, 256.0, 2.0 ** 100, -0.0078125]
        data = b"".join(struct.pack("<H", struct.unpack("<I", struct.pack("<f", v))[0] >> 16) for v in values)
        header = json.dumps({"b": {"dtype": "BF16", "shape": [len(values)], "data_offsets": [0, len(data)]}}).encode()
        open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + data)
        """
        _ = try runPython(bf16, arguments: [path("bf16.safetensors")])
        XCTAssertEqual(try SafetensorsFile(path: path("bf16.safetensors")).tensor("b").array, [1.5, -2.25, 256, 0x1p100, -0.0078125])
    }

    func testDamagedFilesAreNamedWithTheProblem() throws {
        let model = LlamaModel(config: LlamaConfig(hidden: 8, layers: 1, heads: 2, kvHeads: 2, ffn: 12, vocab: 5), seed: 5)
        try model.save(to: path("good.safetensors"))
        let good = try Data(contentsOf: URL(fileURLWithPath: path("good.safetensors")))

        func expectError(_ bytes: Data, _ fragment: String, line: UInt = #line) {
            let p = path("bad-\(line).safetensors")
            XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: bytes))
            XCTAssertThrowsError(try LlamaModel.load(from: p), line: line) { error in
                let message = "\(error)"
                XCTAssertTrue(error is CheckpointError, line: line)
                XCTAssertTrue(message.contains(p), "names the file: \(message)", line: line)
                XCTAssertTrue(message.contains(fragment), "says '\(fragment)': \(message)", line: line)
            }
        }
        expectError(good.prefix(good.count - 100), "truncated")
        expectError(good.prefix(5), "8-byte header length")
        var garbled = good
        garbled[10] = 0xFF; garbled[11] = 0x00
        expectError(garbled, "not a JSON object")
        var huge = good
        huge[6] = 0x7F
        expectError(huge, "runs past the end")
        expectError(Data(), "8-byte header length")

        // A well-formed file for another shape: the model says what does not fit.
        let other = LlamaModel(config: LlamaConfig(hidden: 8, layers: 1, heads: 2, kvHeads: 2, ffn: 16, vocab: 5), seed: 6)
        try other.save(to: path("other.safetensors"))
        XCTAssertThrowsError(try LlamaModel.load(from: path("other.safetensors"), config: model.config)) { error in
            XCTAssertTrue("\(error)".contains("model.layers.0.mlp.gate_proj.weight has shape [16, 8], expected [12, 8]"), "\(error)")
        }
        XCTAssertThrowsError(try LlamaModel.load(from: path("missing.safetensors"))) { error in
            XCTAssertTrue("\(error)".contains("cannot be read"), "\(error)")
        }
    }
}
