import ArgumentParser
import Decoder
import LayerGraph

struct Graph: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the compiled layer graph of a variant: per layer, who queries, who is attended, what is masked, what runs.")

    @Option(help: "Model shape: \(LlamaConfig.presets.keys.sorted().joined(separator: ", ")).")
    var model = "tiny"
    @Option(help: "Variant in the text form, e.g. 'proxyv(r=4)@from:2' (see README, 'Variants').")
    var variant = "baseline"
    @Option(help: "Vision grid side G (patches per crop side).")
    var grid = 24
    @Option(help: "Vision encoder features per token (kv-only's projectors read them).")
    var features = 1024

    func validate() throws {
        try check(grid, in: 1...512, "--grid")
        try check(features, in: 1...16384, "--features")
    }

    func run() throws {
        let config = try decoderShape(model)
        let graph = try reportingBadInput {
            try LayerGraph(spec: VariantSpec(variant), layers: config.layers, hidden: config.hidden, grid: grid, features: features)
        }
        print("model \(model): \(config.layers) layers, hidden \(config.hidden); vision grid \(grid)×\(grid) per crop")
        print(graph.rendered())
    }
}
