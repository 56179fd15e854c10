import Accounting
import Decoder
import Kernels
import LayerGraph
import TestSupport
import XCTest

/// The analytic count equals the FLOPs counted inside `BLAS.gemm` while the executor runs,
/// exactly, for every variant, in prefill and in cached decoding.
final class ProofTests: XCTestCase {
    let config = LlamaConfig(hidden: 16, layers: 4, heads: 4, kvHeads: 2, ffn: 24, vocab: 11)
    let layout = TokenLayout(grid: 4, crops: 3, system: 2, question: 3, answer: 2)
    func counted(_ body: () -> Void) -> Int {
        let before = BLAS.executedFLOPs.load(ordering: .relaxed)
        body()
        return BLAS.executedFLOPs.load(ordering: .relaxed) - before
    }

    func testAnalyticEqualsCountedInPrefillAndDecoding() throws {
        var rng = SeededGenerator(seed: 1)
        let inputs = Tensor(shape: [layout.count, config.hidden], std: 1, rng: &rng)
        let saliency = Dictionary(uniqueKeysWithValues: layout.tokens.filter { $0.kind == .vision }.map { ($0, rng.nextUniform()) })
        for v in variants(with: .flops) {
            let graph = try LayerGraph(spec: VariantSpec(v), layers: config.layers, hidden: config.hidden, grid: layout.grid,
                                       features: caseFeatureWidth)
            let model = GraphModel(decoder: LlamaModel(config: config, seed: 2), graph: graph, seed: 3)
            let accountant = Accountant(config: config, graph: graph, layout: layout)
            let pass = GraphPass(model: model, layout: layout, inputs: inputs, saliency: saliency, features: caseFeatures(layout))
            let prefill = counted { pass.forward() }
            XCTAssertEqual(prefill, accountant.prefill(convention: .executed).reduce(0) { $0 + $1.flops }, "prefill, \(v)")
            XCTAssertLessThanOrEqual(accountant.prefill(convention: .executed).dropLast().reduce(0) { $0 + $1.flops },
                                     accountant.prefill(convention: .paper).reduce(0) { $0 + $1.flops }, "\(v): computed ≤ dense")
            let decoder = GraphDecoder(prefill: pass)
            for step in 0..<3 {
                let flops = counted { _ = decoder.step(token: Int32(step + 1)) }
                XCTAssertEqual(flops, accountant.decodeStep(generated: step, convention: .executed).reduce(0) { $0 + $1.flops },
                               "decode step \(step), \(v)")
            }
        }
    }
}
