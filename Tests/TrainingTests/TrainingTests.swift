import Decoder
import Kernels
import LayerGraph
import Training
import XCTest

final class TrainingTests: XCTestCase {
    /// One AdamW step by hand: bias-corrected moments, decoupled decay on matrices only, per-group rates.
    func testAdamWStepByHand() {
        let matrix = Parameter(name: "w", value: Tensor(shape: [1, 2], values: [1, -2]), group: "a")
        let gain = Parameter(name: "g", value: Tensor(shape: [1], values: [3]), group: "b")
        matrix.grad[0] = 0.5; matrix.grad[1] = -4; gain.grad[0] = 2
        let adam = AdamW(parameters: [matrix, gain], settings: .init(beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.5))
        adam.update { $0 == "a" ? 0.1 : 0.01 }
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps) = lr·sign(g).
        XCTAssertEqual(matrix.value[0], 1 * (1 - 0.1 * 0.5) - 0.1, accuracy: 1e-6)
        XCTAssertEqual(matrix.value[1], -2 * (1 - 0.1 * 0.5) + 0.1, accuracy: 1e-6)
        XCTAssertEqual(gain.value[0], 3 - 0.01, accuracy: 1e-6, "no decay on a vector")
        adam.update { _ in 0 }
        XCTAssertEqual(gain.value[0], 3 - 0.01, accuracy: 1e-6, "rate 0 freezes a group")
    }

    func testCosineScheduleWithWarmup() {
        let s = CosineSchedule(warmupSteps: 4, totalSteps: 14, minFactor: 0.1)
        XCTAssertEqual(s.factor(at: 0), 0.25)
        XCTAssertEqual(s.factor(at: 3), 1)
        XCTAssertEqual(s.factor(at: 4), 1)
        XCTAssertEqual(s.factor(at: 9), 0.55, accuracy: 1e-6)
        XCTAssertEqual(s.factor(at: 14), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.factor(at: 40), 0.1, accuracy: 1e-6)
    }

    func testGlobalNormClipping() {
        let a = Parameter(name: "a", value: Tensor(shape: [2])), b = Parameter(name: "b", value: Tensor(shape: [1]))
        a.grad[0] = 3; a.grad[1] = 0; b.grad[0] = 4
        XCTAssertEqual(clipGradients([a, b], maxNorm: 10), 5)
        XCTAssertEqual(a.grad[0], 3, "below the limit nothing changes")
        XCTAssertEqual(clipGradients([a, b], maxNorm: 1), 5)
        XCTAssertEqual(a.grad[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(b.grad[0], 0.8, accuracy: 1e-5)
    }

    func testToyTaskScoresOnlyTheAnswer() {
        var rng = SeededGenerator(seed: 1)
        let batch = ToyTask.reverse.batch(count: 20, lengths: 2...6, vocab: 20, rng: &rng)
        XCTAssertGreaterThan(Set(batch.inputs.map(\.count)).count, 1, "sequences differ in length")
        for (input, target) in zip(batch.inputs, batch.targets) {
            let n = (input.count - 2) / 2
            let prompt = Array(input[1...n])
            XCTAssertEqual(input[0], ToyTask.bos)
            XCTAssertEqual(input[n + 1], ToyTask.separator)
            XCTAssertEqual(Array(target[..<(n + 1)]), Array(repeating: -1, count: n + 1))
            XCTAssertEqual(Array(target[(n + 1)...]), prompt.reversed() + [ToyTask.eos])
        }
    }

    /// Split over two cores (two shards, two replicas) or run whole, a step sees the same loss and gradients.
    func testDataParallelStepEqualsTheWholeBatch() {
        var rng = SeededGenerator(seed: 3)
        let batch = ToyTask.copy.batch(count: 5, lengths: 2...9, vocab: 64, rng: &rng)
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        func step(cores: Int) -> (Float, [[Float]]) {
            BLAS.threads = cores
            let model = LlamaModel(config: LlamaConfig.presets["tiny"]!, seed: 4)
            let report = Trainer(model: model, recipe: TrainingRecipe(steps: 1, learningRate: 1e-3, warmupSteps: 1)).train(on: batch)
            return (report.loss, model.parameters.map(\.grad.array))
        }
        let (wholeLoss, whole) = step(cores: 1), (splitLoss, split) = step(cores: 2)
        XCTAssertEqual(wholeLoss, splitLoss, accuracy: 1e-6)
        for (a, b) in zip(whole, split) {
            let scale = a.map(abs).max()!
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * scale + 1e-9) }
        }
    }

    /// A step reports the batch's mean loss before its update, computed by one pass over the whole
    /// batch (the trainer deals it into shards), and the update lowers it.
    func testAStepReportsTheBatchLossBeforeItsUpdate() {
        let model = LlamaModel(config: LlamaConfig.presets["tiny"]!, seed: 9)
        let trainer = Trainer(model: model, recipe: TrainingRecipe(steps: 3, learningRate: 1e-2, warmupSteps: 1))
        var rng = SeededGenerator(seed: 10)
        let batch = ToyTask.copy.batch(count: 6, lengths: 3...5, vocab: 64, rng: &rng)
        let before = TextPass(model: model, batch: batch, keepsForBackward: false).forward()
        XCTAssertEqual(trainer.train(on: batch).loss, before, accuracy: 1e-5)
        XCTAssertLessThan(TextPass(model: model, batch: batch, keepsForBackward: false).forward(), before)
    }
}
