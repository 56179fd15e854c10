import Accounting
import ArgumentParser
import Decoder
import Foundation
import Kernels
import LayerGraph

struct Time: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill time on this CPU: one decoder layer of each kind at the real shape, composed over the model.")

    @OptionGroup var options: VariantOptions
    @Option(help: "Timed repetitions after one warm-up; medians are reported.")
    var reps = 3
    @Option(help: "Output: text or json.")
    var format: OutputFormat = .text
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        let (config, spec, graph) = try options.compile()
        let layout = options.layout, model = options.model, variant = options.variant
        let kinds = Accountant(config: config, graph: graph, layout: layout).layerKinds
        let fullTokens = Dictionary(grouping: layout.tokens, by: \.kind).mapValues(\.count)
        // The probe: a baseline layer on the full prompt as the yardstick, then one layer of each kind.
        let referenceIsFirst = kinds[0].node == .baseline && kinds[0].tokens == fullTokens
        let nodes = (referenceIsFirst ? [] : [LayerNode.baseline]) + kinds.map(\.node)
        var probeConfig = config
        probeConfig.layers = nodes.count
        probeConfig.vocab = 16   // the LM head is not part of the layers being timed
        let probeGraph = LayerGraph(spec: spec, nodes: nodes)
        let probeKinds = Accountant(config: probeConfig, graph: probeGraph, layout: layout).layerKinds
        guard probeKinds.map(\.tokens) == (referenceIsFirst ? [] : [fullTokens]) + kinds.map(\.tokens) else {
            throw ValidationError("\(variant): its layer kinds cannot be timed one by one (token counts differ in the probe)")
        }
        FileHandle.standardError.write(Data("building \(nodes.count) layers of \(model) shape with random weights…\n".utf8))
        let probe = GraphModel(decoder: LlamaModel(config: probeConfig, seed: 1), graph: probeGraph, seed: 2)
        var rng = SeededGenerator(seed: 3)
        let inputs = Tensor(shape: [layout.count, config.hidden], std: 1, rng: &rng)
        let saliency = Dictionary(uniqueKeysWithValues: layout.tokens.filter { $0.kind == .vision }.map { ($0, rng.nextUniform()) })
        let progress = Progress(total: reps + 1, label: "time")
        var samples: [[Double]] = []
        for rep in 0...reps {
            let pass = GraphPass(model: probe, layout: layout, inputs: inputs, saliency: saliency, keepsForBackward: false)
            pass.forward()
            if rep > 0 { samples.append(pass.layerSeconds) }
            progress.update(done: rep + 1, status: String(format: "%.1fs per pass", pass.layerSeconds.reduce(0, +)))
        }
        func stats(_ i: Int) -> (median: Double, min: Double, max: Double) {
            let t = samples.map { $0[i] }.sorted()
            return (t[t.count / 2], t.first!, t.last!)
        }
        let offset = referenceIsFirst ? 0 : 1
        let reference = stats(0), referenceMacs = Accountant(config: probeConfig, graph: probeGraph, layout: layout).prefill()[0].macs
        let total = kinds.enumerated().reduce(0.0) { $0 + Double($1.element.layers.count) * stats($1.offset + offset).median }
        let spread = kinds.enumerated().map { (i, k) in (Double(k.layers.count) * stats(i + offset).min, Double(k.layers.count) * stats(i + offset).max) }
        let baselineTotal = Double(config.layers) * reference.median
        let flops = kinds.reduce(0) { $0 + $1.layers.count * $1.macs }, baselineFlops = config.layers * referenceMacs
        let timeReduction = 100 * (1 - total / baselineTotal), flopsReduction = 100 * (1 - Double(flops) / Double(baselineFlops))
        let paper = PaperTables.rows("table4_proxyv_across_llms").first {
            $0["model"] == model && $0["setting"] == "proxyv" && spec.parts.count == 1 && spec.parts[0].variant.name == "proxyv"
                && Int($0["start_layer"] ?? "") == spec.parts[0].schedule.layers(of: config.layers).first
        }.flatMap { Double($0["time_reduced_pct"] ?? "") }

        let rows: [[String: Any]] = kinds.enumerated().map { i, k in
            let s = stats(i + offset)
            return ["layers": k.layers, "median_seconds": s.median, "min_seconds": s.min, "max_seconds": s.max,
                    "gflops_per_second": 2 * Double(k.macs) / s.median / 1e9,
                    "time_ratio_to_baseline": s.median / reference.median, "flops_ratio_to_baseline": Double(k.macs) / Double(referenceMacs),
                    "tokens": Dictionary(uniqueKeysWithValues: k.tokens.map { ($0.key.rawValue, $0.value) })]
        }
        switch format {
        case .json:
            var object: [String: Any] = ["model": model, "variant": variant, "threads": BLAS.threads, "reps": reps,
                                         "baseline_layer_seconds": reference.median, "prefill_seconds": total,
                                         "prefill_seconds_min": spread.reduce(0) { $0 + $1.0 }, "prefill_seconds_max": spread.reduce(0) { $0 + $1.1 },
                                         "baseline_prefill_seconds": baselineTotal, "time_reduction_pct": timeReduction,
                                         "flops_reduction_pct": flopsReduction, "kinds": rows]
            if let paper { object["paper_time_reduction_pct"] = paper }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        case .text:
            print("\(model), variant \(variant): \(layout.count) prompt tokens, OpenBLAS threads \(BLAS.threads), median of \(reps) runs")
            print(String(format: "baseline layer: %.3f s (min %.3f, max %.3f), %.1f GFLOP/s", reference.median, reference.min, reference.max,
                         2 * Double(referenceMacs) / reference.median / 1e9))
            for (k, row) in zip(kinds, rows) {
                let layers = k.layers.count == 1 ? "layer \(k.layers[0])" : "layers \(k.layers.first!)…\(k.layers.last!) (\(k.layers.count))"
                print(layers.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%.3f s (min %.3f, max %.3f), %.1f GFLOP/s; time ratio to baseline %.3f, FLOPs ratio %.3f",
                             row["median_seconds"] as! Double, row["min_seconds"] as! Double, row["max_seconds"] as! Double,
                             row["gflops_per_second"] as! Double, row["time_ratio_to_baseline"] as! Double, row["flops_ratio_to_baseline"] as! Double))
            }
            print(String(format: "prefill %.1f s (%.1f–%.1f) against baseline %.1f s: time reduced by %.1f %%, FLOPs (paper convention) by %.1f %%",
                         total, spread.reduce(0) { $0 + $1.0 }, spread.reduce(0) { $0 + $1.1 }, baselineTotal, timeReduction, flopsReduction)
                  + (paper.map { String(format: "; paper (H100, eager attention): time reduced by %.0f %%", $0) } ?? ""))
        }
    }
}
