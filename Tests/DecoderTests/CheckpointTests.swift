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

    /// ProxyV's guided updates under the official names: a checkpoint built in Python as
    /// penghao-wu/ProxyV's code names its modules — one `VisionMLP` per layer from the start
    /// layer in `model.vision_mlp_layers`, counted from 0, of width d/2 below d = 1024 — loads into
    /// `proxyv(r=2, mlp=official)@from:2`, every tensor where the official code puts it; a file
    /// Squeeze writes opens in Python's safetensors with the official names and shapes.
    func testOfficialProxyVCheckpointLayoutReadsAndWrites() throws {
        let config = LlamaConfig(hidden: 16, layers: 4, heads: 4, kvHeads: 2, ffn: 24, vocab: 11)
        let official = """
        import sys, numpy as np
        from safetensors.numpy import save_file
        d, layers, heads, kv_heads, ffn, vocab, start = 16, 4, 4, 2, 24, 11, 2
        rng = np.random.default_rng(0)
        w = lambda *shape: (0.1 * rng.standard_normal(shape)).astype(np.float32)
        t = {"model.embed_tokens.weight": w(vocab, d), "model.norm.weight": 1 + w(d), "lm_head.weight": w(vocab, d)}
        kv = kv_heads * d // heads
        for i in range(layers):
            p = f"model.layers.{i}."
            t.update({p + "self_attn.q_proj.weight": w(d, d), p + "self_attn.k_proj.weight": w(kv, d), p + "self_attn.v_proj.weight": w(kv, d),
                      p + "self_attn.o_proj.weight": w(d, d), p + "mlp.gate_proj.weight": w(ffn, d), p + "mlp.up_proj.weight": w(ffn, d),
                      p + "mlp.down_proj.weight": w(d, ffn), p + "input_layernorm.weight": 1 + w(d), p + "post_attention_layernorm.weight": 1 + w(d)})
        # llava_arch: num_of_vision_mlp_layers = num_hidden_layers - start; width hidden // (4 if hidden >= 1024 else 2)
        width = d // (4 if d >= 1024 else 2)
        for j in range(layers - start):
            p = f"model.vision_mlp_layers.{j}."
            t.update({p + "context_proj.weight": w(width, d), p + "input_proj.weight": w(width, d),
                      p + "proj.0.weight": w(width, 2 * width), p + "proj.2.weight": w(d, width), p + "layernorm_post.weight": 1 + w(d)})
        save_file(t, sys.argv[1], metadata={"format": "pt"})
        """
        _ = try runPython(official, arguments: [path("official.safetensors")])
        let file = try SafetensorsFile(path: path("official.safetensors"))
        let graph = try LayerGraph(spec: VariantSpec("proxyv(r=2, mlp=official)@from:2"), layers: 4, hidden: 16, grid: 4)
        let model = GraphModel(decoder: try LlamaModel.load(from: file.path, config: config), graph: graph, seed: 1)
        try file.fill(model.modules.parameters)
        let names = Set((model.decoder.parameters + model.modules.parameters).map(\.name))
        XCTAssertEqual(names, Set(file.entries.keys), "every tensor of the file has its place, and every weight its tensor")
        for p in model.modules.parameters { XCTAssertEqual(p.value.array, try file.tensor(p.name).array, p.name) }
        XCTAssertEqual(model.modules.guidedUpdates[2]?.inputProj.shape, [8, 16], "layer 2 is vision_mlp_layers.0, width d/2")
        XCTAssertEqual(model.modules.guidedUpdates[3]?.inputProj.name, "model.vision_mlp_layers.1.input_proj.weight")
        let layout = TokenLayout(grid: 4, crops: 2, system: 2, question: 3)
        let pass = GraphPass(model: model, layout: layout, inputs: randomInputs(rows: layout.count, seed: 3))
        pass.forward()
        XCTAssertTrue(pass.logits.array.allSatisfy(\.isFinite))

        let written = path("squeeze.safetensors")
        try SafetensorsFile.write(floats: (model.decoder.parameters + model.modules.parameters).map { ($0.name, $0.value) }, metadata: ["format": "pt"], to: written)
        let read = """
        import json, sys
        from safetensors.numpy import load_file
        t = load_file(sys.argv[1])
        print(json.dumps({k: list(v.shape) for k, v in t.items() if k.startswith("model.vision_mlp_layers.")}))
        """
        let shapes = try JSONSerialization.jsonObject(with: Data(try runPython(read, arguments: [written]).utf8)) as! [String: [Int]]
        var expected: [String: [Int]] = [:]
        for j in 0..<2 {
            let p = "model.vision_mlp_layers.\(j)."
            expected.merge([p + "context_proj.weight": [8, 16], p + "input_proj.weight": [8, 16], p + "proj.0.weight": [8, 16],
                            p + "proj.2.weight": [16, 8], p + "layernorm_post.weight": [16]]) { $1 }
        }
        XCTAssertEqual(shapes, expected)
        // Squeeze's own default stays d/4.
        let quarter = try LayerGraph(spec: VariantSpec("proxyv(r=2)@from:2"), layers: 4, hidden: 16, grid: 4)
        XCTAssertEqual(GraphModel(decoder: model.decoder, graph: quarter, seed: 1).modules.guidedUpdates[2]?.inputProj.shape, [4, 16])
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
