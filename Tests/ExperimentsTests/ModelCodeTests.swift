import Benchmarks
import Experiments
import Training
import XCTest

/// `RunSpec.modelCode` is bumped by hand when the model code changes what a run computes. This
/// test guards it: the losses of a fixed short `tiny` training are recorded for the current
/// version, and a change of the decoder, executor, optimiser or training loop that moves them by
/// more than another BLAS kernel's rounding (1e-3) fails here until the version is bumped and the
/// losses recorded again.
final class ModelCodeTests: XCTestCase {
    static let recorded: (version: Int, losses: [Float]) = (14, [5.4053698, 5.1608973, 5.21706, 4.8069787, 4.706614, 4.747407])

    func testTheModelCodeVersionMatchesWhatTheCodeComputes() throws {
        var run = MultimodalRunConfig.preset("tiny", variant: "proxyv-learned(n=2)@from:2", seed: 3)!
        (run.crops, run.batchSize, run.turns, run.stage1Steps) = (2, 4, 2, 0)
        let model = try MultimodalModel(run: run)
        let trainer = MultimodalTrainer(model: model, recipe: run.recipe(stage: 2))
        let losses = (0..<6).map { trainer.train(on: run.batch(step: $0)).loss }
        XCTAssertEqual(RunSpec.modelCode, Self.recorded.version, "record the losses of the new version: \(losses)")
        XCTAssertEqual(losses.count, Self.recorded.losses.count, "losses of version \(RunSpec.modelCode): \(losses)")
        for (got, want) in zip(losses, Self.recorded.losses) {
            XCTAssertEqual(got, want, accuracy: 1e-3 * max(1, abs(want)),
                           "the model code computes other losses than version \(Self.recorded.version) did: bump RunSpec.modelCode and record \(losses)")
        }
    }
}
