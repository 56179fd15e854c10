import Accounting
import ArgumentParser
import Decoder
import LayerGraph

/// A model, a variant and the prompt it runs on: the paper's prefill by default (5 crops of
/// 24×24, 5 newlines, 50 text tokens).
struct VariantOptions: ParsableArguments {
    @Option(help: "Model shape: \(ModelPresets.all.keys.sorted().joined(separator: ", ")).")
    var model = "vicuna-7b"
    @Option(help: "Variant in the text form, e.g. 'proxyv(r=4)@from:12'.")
    var variant = "baseline"
    @Option(help: "Image crops.")
    var crops = 5
    @Option(help: "Vision grid side G (G×G tokens per crop).")
    var grid = 24
    @Option(help: "Text tokens.")
    var text = 50
    @Option(help: "Vision encoder features per token (kv-only's projectors read them; CLIP ViT-L/14: 1024).")
    var features = 1024

    var layout: TokenLayout { TokenLayout(grid: grid, crops: crops, system: 0, question: text) }

    func validate() throws {
        try check(grid, in: 1...512, "--grid")
        try check(crops, in: 1...16, "--crops")
        try check(text, in: 0...100_000, "--text")
        try check(features, in: 1...16384, "--features")
    }

    /// The compiled variant for `config` (the named model's unless given); bad input exits with status 2.
    func compile(for config: LlamaConfig? = nil) throws -> (config: LlamaConfig, spec: VariantSpec, graph: LayerGraph) {
        try reportingBadInput {
            let config = try config ?? ModelPresets.named(model)
            let spec = try VariantSpec(variant)
            return (config, spec, try LayerGraph(spec: spec, layers: config.layers, hidden: config.hidden, grid: grid, features: features))
        }
    }
}
