import Accounting
import ArgumentParser
import Decoder
import Foundation
import LayerGraph

struct Flops: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Count prefill FLOPs, MACs, parameters and KV-cache bytes of a variant, layer by layer and operation by operation.")

    @OptionGroup var options: VariantOptions
    @Option(help: "A Hugging Face config.json to take the shape from instead of --model.")
    var config: String?
    @Option(help: "Counting convention: \(CountingConvention.allCases.map(\.rawValue).joined(separator: ", ")).")
    var convention: CountingConvention = .paper
    @Option(help: "Also count one decode step after the prompt and this many generated tokens.")
    var decodeAfter = 0
    @Option(help: "Bytes per cached key/value entry (2: 16-bit, as these models are served).")
    var kvBytes = 2

    func validate() throws {
        try check(decodeAfter, in: 0...1_000_000, "--decode-after")
        try check(kvBytes, in: 1...8, "--kv-bytes")
    }
    @Option(help: "Output: table, json or csv.")
    var format: CountFormat = .table

    func run() throws {
        let fromFile = try config.map { path in try reportingBadInput { try ModelPresets.fromHuggingFace(path: path) } }
        let (shape, spec, graph) = try options.compile(for: fromFile)
        let name = config ?? options.model, layout = options.layout, variant = options.variant
        let (crops, grid, text) = (options.crops, options.grid, options.text)
        let accountant = Accountant(config: shape, graph: graph, layout: layout)
        let baseline = Accountant(config: shape, graph: try LayerGraph(spec: .baseline, layers: shape.layers, hidden: shape.hidden, grid: grid),
                                  layout: layout)
        let layers = accountant.prefill(convention: convention)
        let flops = layers.reduce(0) { $0 + $1.flops }, baselineFlops = baseline.prefill(convention: convention).reduce(0) { $0 + $1.flops }
        let reduction = 100 * (1 - Double(flops) / Double(baselineFlops))
        let params = accountant.parameters, kvBytes = accountant.kvCacheBytes(bytesPerValue: self.kvBytes)
        let decodeFlops = accountant.decodeStep(generated: decodeAfter, convention: convention).reduce(0) { $0 + $1.flops }
        let elementwise = accountant.prefillElementwise(convention: convention)
        let paper = spec.parts.count == 1 ? spec.parts[0].schedule.layers(of: shape.layers).first
            .flatMap { PaperTables.flopsReduction(model: name, variant: spec.parts[0].variant.name, startLayer: $0) } : nil

        switch format {
        case .json:
            var object: [String: Any] = [
                "model": name, "variant": variant, "convention": convention.rawValue, "crops": crops, "grid": grid, "text": text,
                "flops": flops, "macs": flops / 2, "baseline_flops": baselineFlops, "reduction_pct": reduction,
                "params": params.reduce(0) { $0 + $1.count }, "kv_cache_bytes": kvBytes,
                "decode_step_flops": decodeFlops, "decode_after_generated": decodeAfter,
                "elementwise_flops": ["norms": elementwise.norms, "softmax": elementwise.softmax, "rope": elementwise.rope],
                "params_by_module": Dictionary(uniqueKeysWithValues: params.map { ($0.module, $0.count) }),
                "per_layer": layers.map { layer in
                    ["layer": layer.layer, "flops": layer.flops,
                     "tokens": Dictionary(uniqueKeysWithValues: layer.tokens.map { ($0.key.rawValue, $0.value) }),
                     "operations": Dictionary(uniqueKeysWithValues: layer.operations.map { ($0.name, $0.flops) })] as [String: Any]
                },
            ]
            if let paper { object["paper_reduction_pct"] = paper }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        case .csv:
            let names = layers.first?.operations.map(\.name) ?? []
            let extra = Array(Set(layers.flatMap { $0.operations.map(\.name) }).subtracting(names)).sorted()
            print((["layer"] + names + extra + ["total"]).joined(separator: ","))
            for layer in layers {
                let byName = Dictionary(uniqueKeysWithValues: layer.operations.map { ($0.name, $0.flops) })
                print(([String(layer.layer)] + (names + extra).map { String(byName[$0] ?? 0) } + [String(layer.flops)]).joined(separator: ","))
            }
        case .table:
            print("\(name), variant \(variant), \(crops) crops of \(grid)×\(grid) + \(crops) newlines + \(text) text tokens, \(convention.rawValue) convention")
            print("layer  tokens in the layer                                  GFLOPs  attention      FFN")
            for layer in layers {
                let byName = Dictionary(uniqueKeysWithValues: layer.operations.map { ($0.name, $0.flops) })
                let tokens = layer.tokens.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
                let attention = (byName["attention_scores"] ?? 0) + (byName["attention_values"] ?? 0)
                let label = layer.layer < shape.layers ? String(layer.layer) : "head"
                print(label.padding(toLength: 5, withPad: " ", startingAt: 0) + "  " + tokens.padding(toLength: 50, withPad: " ", startingAt: 0)
                      + String(format: "%8.1f  %8.1f  %8.1f", Double(layer.flops) / 1e9, Double(attention) / 1e9, Double(byName["ffn"] ?? 0) / 1e9))
            }
            print(String(format: "total %.2f TFLOPs (%.2f TMACs); baseline %.2f TFLOPs; reduced by %.1f %%", Double(flops) / 1e12,
                         Double(flops) / 2e12, Double(baselineFlops) / 1e12, reduction)
                  + (paper.map { String(format: " (paper: %.0f %%)", $0) } ?? ""))
            print("parameters: " + params.map { "\($0.module) \($0.count)" }.joined(separator: ", "))
            print("KV cache after prefill: \(kvBytes) bytes (\(self.kvBytes)-byte values)")
            print(String(format: "one decode step after the prompt and %d new tokens: %.2f GFLOPs", decodeAfter, Double(decodeFlops) / 1e9))
            print(String(format: "not in the totals — norms %.1f, softmax %.1f, RoPE %.1f GFLOPs", Double(elementwise.norms) / 1e9,
                         Double(elementwise.softmax) / 1e9, Double(elementwise.rope) / 1e9))
        }
    }
}

enum CountFormat: String, ExpressibleByArgument, CaseIterable { case table, json, csv }
extension CountingConvention: ExpressibleByArgument {}
