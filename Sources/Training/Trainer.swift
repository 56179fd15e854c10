import Decoder
import Kernels

/// How to train: optimiser, schedule, clipping and per-group learning rates.
public struct TrainingRecipe: Codable, Equatable, Sendable {
    public var steps: Int
    public var learningRate: Float
    /// Learning rates of named parameter groups; groups not listed use `learningRate`.
    public var groupLearningRates: [String: Float] = [:]
    public var warmupSteps: Int
    public var minLearningRateFactor: Float = 0.1
    public var gradientClip: Float = 1
    public var adam = AdamW.Settings()

    public init(steps: Int, learningRate: Float, groupLearningRates: [String: Float] = [:], warmupSteps: Int,
                minLearningRateFactor: Float = 0.1, gradientClip: Float = 1, adam: AdamW.Settings = .init()) {
        self.steps = steps; self.learningRate = learningRate; self.groupLearningRates = groupLearningRates
        self.warmupSteps = warmupSteps; self.minLearningRateFactor = minLearningRateFactor
        self.gradientClip = gradientClip; self.adam = adam
    }

    public var schedule: CosineSchedule {
        CosineSchedule(warmupSteps: warmupSteps, totalSteps: steps, minFactor: minLearningRateFactor)
    }
}

/// What one step reports.
public struct StepReport: Sendable {
    public let step: Int, loss: Float, gradientNorm: Float, learningRate: Float, tokens: Int
}

/// Trains a decoder on batches drawn from a source: forward, backward, clip, AdamW, schedule.
public final class Trainer {
    public let model: LlamaModel
    public let recipe: TrainingRecipe
    private let optimizer: AdamW
    public private(set) var step = 0

    public init(model: LlamaModel, recipe: TrainingRecipe) {
        self.model = model
        self.recipe = recipe
        optimizer = AdamW(parameters: model.parameters, settings: recipe.adam)
    }

    /// One optimisation step on `batch`; returns the loss before the update.
    @discardableResult
    public func train(on batch: TokenBatch) -> StepReport {
        model.zeroGradients()
        let pass = DecoderPass(model: model, batch: batch)
        let loss = pass.forward()
        pass.backward()
        let norm = clipGradients(model.parameters, maxNorm: recipe.gradientClip)
        let factor = recipe.schedule.factor(at: step)
        optimizer.update { group in factor * (self.recipe.groupLearningRates[group] ?? self.recipe.learningRate) }
        defer { step += 1 }
        return StepReport(step: step, loss: loss, gradientNorm: norm, learningRate: factor * recipe.learningRate,
                          tokens: batch.tokenCount)
    }
}
