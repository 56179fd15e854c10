import Decoder
import Kernels
import LayerGraph
import XCTest

final class DecoderTests: XCTestCase {
    let config = LlamaConfig(hidden: 16, layers: 2, heads: 4, kvHeads: 2, ffn: 24, vocab: 13)

    /// Sequences packed in one batch give the logits each gives alone: attention never crosses a
    /// sequence boundary and positions restart at 0.
    func testBatchOfVariableLengthSequencesEqualsEachAlone() {
        let model = LlamaModel(config: config, seed: 1)
        let sequences: [[Int32]] = [[1, 5, 7, 2, 9], [3, 3], [12, 0, 4, 8, 8, 1, 6]]
        let batched = TextPass(model: model, batch: TokenBatch(inputs: sequences, targets: sequences), keepsForBackward: false)
        batched.forward()
        var row = 0
        for s in sequences {
            let alone = TextPass(model: model, batch: TokenBatch(inputs: [s], targets: [s]), keepsForBackward: false)
            alone.forward()
            for i in 0..<alone.logits.count {
                XCTAssertEqual(alone.logits[i], batched.logits[row * config.vocab + i], accuracy: 1e-5)
            }
            row += s.count
        }
    }

    /// With a tied head the embedding collects both gradients; checked by central differences of
    /// the whole model's loss (accumulated in Double; h = 1e-2, |Δ| ≤ 2e-3 + 2e-2·|numeric|).
    func testTiedEmbeddingGradientByFiniteDifferences() {
        var tied = config
        tied.tiedEmbeddings = true
        let model = LlamaModel(config: tied, seed: 2)
        for p in model.parameters where p.decays { for i in 0..<p.value.count { p.value[i] *= 10 } }  // non-trivial logits
        let batch = TokenBatch(inputs: [[1, 4, 2, 7], [3, 11]], targets: [[4, 2, -1, 0], [11, 5]])
        model.zeroGradients()
        let pass = TextPass(model: model, batch: batch)
        pass.forward()
        pass.backward()
        func loss() -> Double { Double(TextPass(model: model, batch: batch, keepsForBackward: false).forward()) }
        let h: Float = 1e-2
        for p in [model.embedding, model.layers[1].key, model.layers[0].attentionNorm] {
            for i in Swift.stride(from: 0, to: p.value.count, by: max(1, p.value.count / 12)) {
                let saved = p.value[i]
                p.value[i] = saved + h; let plus = loss()
                p.value[i] = saved - h; let minus = loss()
                p.value[i] = saved
                let numeric = (plus - minus) / Double(2 * h)
                XCTAssertLessThanOrEqual(abs(Double(p.grad[i]) - numeric), 2e-3 + 2e-2 * abs(numeric), "\(p.name)[\(i)]")
            }
        }
    }

    /// An inference pass (no attention weights kept) computes what a training pass does.
    func testForwardWithoutActivationsGivesTheSameLogits() {
        let model = LlamaModel(config: config, seed: 3)
        let batch = TokenBatch(inputs: [[1, 2, 3, 4, 5, 6]], targets: [[2, 3, 4, 5, 6, 7]])
        let a = TextPass(model: model, batch: batch), b = TextPass(model: model, batch: batch, keepsForBackward: false)
        XCTAssertEqual(a.forward(), b.forward(), accuracy: 1e-6)
        for (x, y) in zip(a.logits.array, b.logits.array) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testConfigurationProblemsAreSpelledOut() {
        XCTAssertEqual(LlamaConfig(hidden: 30, layers: 1, heads: 4, kvHeads: 3, ffn: 8, vocab: 4).problems,
                       ["hidden 30 is not a multiple of heads 4", "heads 4 is not a multiple of kv_heads 3"])
        XCTAssertTrue(config.problems.isEmpty)
    }

    func testTrainingFLOPsEqualTheProductsThatRan() {
        let model = LlamaModel(config: config, seed: 4)
        let batch = TokenBatch(inputs: [[1, 2, 3], [4, 5, 6, 7, 8]], targets: [[2, 3, 4], [5, 6, 7, 8, 9]])
        let before = BLAS.executedFLOPs.load(ordering: .relaxed)
        let pass = TextPass(model: model, batch: batch)
        pass.forward()
        XCTAssertEqual(BLAS.executedFLOPs.load(ordering: .relaxed) - before, config.forwardFLOPs(sequenceLengths: [3, 5]))
        pass.backward()
        XCTAssertEqual(BLAS.executedFLOPs.load(ordering: .relaxed) - before, config.trainingStepFLOPs(sequenceLengths: [3, 5]))
    }
}
