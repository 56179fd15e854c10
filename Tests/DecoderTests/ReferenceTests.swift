import Decoder
import Foundation
import Kernels
import LayerGraph
import Training
import XCTest

/// The executor against the independent numpy reference (Reference/make_reference.py, in
/// float64): logits, loss, every parameter's gradient, and 5 AdamW steps, for a tiny GQA model
/// read from a safetensors file that Python's `safetensors` package wrote and a packed batch of
/// three text sequences of different lengths; and the forward of three variants over a
/// multimodal layout.
///
/// Tolerances (Float32 against float64):
/// - logits: |Δ| ≤ 1e-4 + 1e-4·|reference|
/// - loss: |Δ| ≤ 1e-5
/// - gradients, per tensor: max |Δ| ≤ 1e-6 + 1e-4 · max |reference|
/// - AdamW losses: |Δ| ≤ 1e-4 at each of the 5 steps
final class ReferenceTests: XCTestCase {
    static let folder = Bundle.module.resourceURL!.appendingPathComponent("Reference")
    static func path(_ file: String) -> String { folder.appendingPathComponent(file).path }

    func loadFixture() throws -> (model: LlamaModel, batch: TokenBatch, reference: SafetensorsFile) {
        let model = try LlamaModel.load(from: Self.path("tiny_model.safetensors"))
        let reference = try SafetensorsFile(path: Self.path("reference_outputs.safetensors"))
        let lengths = try reference.integers("lengths").map(Int.init)
        let inputs = try reference.integers("inputs"), targets = try reference.integers("targets")
        var start = 0, batchInputs: [[Int32]] = [], batchTargets: [[Int32]] = []
        for n in lengths {
            batchInputs.append(Array(inputs[start..<start + n])); batchTargets.append(Array(targets[start..<start + n]))
            start += n
        }
        return (model, TokenBatch(inputs: batchInputs, targets: batchTargets), reference)
    }

    func testLogitsLossAndGradientsMatchReference() throws {
        let (model, batch, reference) = try loadFixture()
        XCTAssertEqual(model.config, LlamaConfig(hidden: 32, layers: 2, heads: 4, kvHeads: 2, ffn: 48, vocab: 37))
        model.zeroGradients()
        let pass = TextPass(model: model, batch: batch)
        let loss = pass.forward()
        pass.backward()

        XCTAssertEqual(loss, try reference.tensor("loss")[0], accuracy: 1e-5)
        let logits = try reference.tensor("logits")
        XCTAssertEqual(logits.shape, pass.logits.shape)
        for i in 0..<logits.count {
            XCTAssertLessThanOrEqual(abs(pass.logits[i] - logits[i]), 1e-4 + 1e-4 * abs(logits[i]), "logit \(i)")
        }
        for p in model.parameters {
            let expected = try reference.tensor("grad." + p.name)
            XCTAssertEqual(expected.shape, p.shape, p.name)
            let scale = expected.array.map(abs).max()!
            let worst = zip(p.grad.array, expected.array).map { abs($0 - $1) }.max()!
            XCTAssertGreaterThan(scale, 0, "\(p.name): the reference gradient is not trivially zero")
            XCTAssertLessThanOrEqual(worst, 1e-6 + 1e-4 * scale, "gradient of \(p.name)")
        }
    }

    /// AdamW (β = 0.9/0.95, decoupled decay 0.1 on matrices), global-norm clipping at 1, 2 warm-up
    /// steps then cosine to 0.1×, and a separate learning rate for the embedding group.
    func testFiveAdamWStepsMatchReference() throws {
        let (model, batch, reference) = try loadFixture()
        model.embedding.group = "embedding"
        let recipe = TrainingRecipe(steps: 5, learningRate: 1e-2, groupLearningRates: ["embedding": 3e-3], warmupSteps: 2,
                                    minLearningRateFactor: 0.1, gradientClip: 1,
                                    adam: .init(beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1))
        let trainer = Trainer(model: model, recipe: recipe)
        let losses = (0..<5).map { _ in trainer.train(on: batch).loss }
        let expected = try reference.tensor("adamw_losses").array
        for (step, (got, want)) in zip(losses, expected).enumerated() {
            XCTAssertEqual(got, want, accuracy: 1e-4, "AdamW step \(step)")
        }
        XCTAssertLessThan(losses.last!, losses.first! * 0.5, "the reference recipe lowers the loss")
    }

    /// The executor's forward of `mask-vv`, `skip-vattn-ffn` and spatial `proxyv` (and the
    /// baseline) over a multimodal token layout, against the numpy forward written from the
    /// paper's semantics, per token group: |Δ| ≤ 1e-4 + 1e-4·|reference|. The same comparison
    /// tells apart two deliberately wrong references (mask-vv without its diagonal, ProxyV's
    /// proxies one position later): each differs from the executor by more than 1e-2 somewhere.
    func testVariantForwardsMatchTheNumpyReference() throws {
        let file = try SafetensorsFile(path: Self.path("variant_model.safetensors"))
        let decoder = try LlamaModel.load(from: Self.path("variant_model.safetensors"))
        let outputs = try SafetensorsFile(path: Self.path("variant_outputs.safetensors"))
        let layout = TokenLayout(grid: 4, crops: 2, system: 2, question: 3)
        let inputs = try file.tensor("inputs"), c = decoder.config
        XCTAssertEqual(inputs.shape, [layout.count, c.hidden])
        func logits(_ variant: String) throws -> (TokenLayout, [Float]) {
            let graph = try LayerGraph(spec: VariantSpec(variant), layers: c.layers, hidden: c.hidden, grid: layout.grid)
            let m = GraphModel(decoder: decoder, graph: graph, seed: 0)
            for p in m.modules.parameters { p.value.fill(from: try file.tensor(p.name)) }
            let pass = GraphPass(model: m, layout: layout, inputs: inputs, keepsForBackward: false)
            pass.forward()
            return (pass.finalLayout, pass.logits.array)
        }
        func worst(_ got: (TokenLayout, [Float]), _ reference: Tensor, kinds: Set<GroupKind>) -> Float {
            // The reference lists the layout's tokens in order; the executor's final layout may pack them otherwise.
            let v = c.vocab, rowOf = Dictionary(uniqueKeysWithValues: got.0.tokens.enumerated().map { ($1, $0) })
            var worst: Float = 0
            for (i, token) in layout.tokens.enumerated() where kinds.contains(token.kind) {
                let r = rowOf[token]!
                for j in 0..<v {
                    let want = reference[i * v + j]
                    worst = max(worst, abs(got.1[r * v + j] - want) / (1 + abs(want)))
                }
            }
            return worst
        }
        for (name, variant) in [("baseline", "baseline"), ("mask-vv", "mask-vv@from:1"), ("skip-vattn-ffn", "skip-vattn-ffn@from:1"),
                                ("proxyv", "proxyv(r=2)@from:1")] {
            let got = try logits(variant), reference = try outputs.tensor("logits." + name)
            XCTAssertEqual(reference.shape, [layout.count, c.vocab], name)
            for kind in [GroupKind.system, .vision, .newline, .question] {
                XCTAssertLessThanOrEqual(worst(got, reference, kinds: [kind]), 1e-4, "\(name): \(kind) tokens")
            }
        }
        let all = Set(GroupKind.allCases)
        XCTAssertGreaterThan(worst(try logits("mask-vv@from:1"), try outputs.tensor("logits.wrong.mask-vv-without-diagonal"), kinds: all), 1e-2)
        XCTAssertGreaterThan(worst(try logits("proxyv(r=2)@from:1"), try outputs.tensor("logits.wrong.proxyv-positions-shifted"), kinds: all), 1e-2)
    }
}
