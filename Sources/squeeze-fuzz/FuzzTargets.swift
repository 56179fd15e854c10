import Accounting
import Decoder
import Experiments
import Foundation
import LayerGraph

/// The parsers that read what users hand Squeeze, each as a function of raw bytes. A target may
/// throw any error (bad input is expected); it must not trap, hang or exhaust memory.
enum FuzzTarget: String, CaseIterable {
    /// Variant text, then what every command does with it: compile the layer graph, count FLOPs.
    case variant
    /// A YAML sweep manifest, expanded into its runs.
    case manifest
    /// A safetensors file: the header, then every tensor read.
    case safetensors
    /// An lmms-eval results file, imported as a run record.
    case lmmsEval = "lmms-eval"

    func run(_ data: Data) {
        switch self {
        case .variant:
            let text = String(decoding: data, as: UTF8.self)
            guard let spec = try? VariantSpec(text) else { return }
            let config = LlamaConfig.presets["small"]!
            _ = try? LayerGraph(spec: spec, layers: config.layers, hidden: config.hidden, grid: 8)
            _ = try? AccountingRecord(config: config, spec: spec, layout: TokenLayout(grid: 8, crops: 5, system: 4, question: 20))
        case .manifest:
            _ = try? Manifest(path: FuzzTarget.file("manifest.yaml", holding: data))
        case .safetensors:
            guard let file = try? SafetensorsFile(path: FuzzTarget.file("model.safetensors", holding: data)) else { return }
            for (name, entry) in file.entries {
                if entry.dtype.hasPrefix("I") { _ = try? file.integers(name) } else { _ = try? file.tensor(name) }
            }
        case .lmmsEval:
            // A small prompt: the FLOPs count at the paper's would take most of each execution.
            _ = try? LmmsEvalImport(path: FuzzTarget.file("results.json", holding: data), model: "vicuna-7b", variant: "proxyv(r=2)@from:12",
                                    mode: "ft", crops: 1, grid: 4, text: 8)
        }
    }

    /// The parsers read files: each input goes to one file of this process's own directory.
    private static let directory: String = {
        let path = NSTemporaryDirectory() + "squeeze-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    private static func file(_ name: String, holding data: Data) -> String {
        let path = directory + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: data)
        return path
    }
}
