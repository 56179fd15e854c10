import Decoder
import Foundation
import Kernels
import Training
import XCTest

/// Squeeze's decoder against the independent numpy reference (Reference/make_reference.py, in
/// float64): logits, loss, every parameter's gradient, and 5 AdamW steps, for a tiny GQA model
/// read from a safetensors file that Python's `safetensors` package wrote.
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
}
