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
    /// Each sample's loss (multimodal steps), in batch order.
    public var sampleLosses: [Float] = []
}

/// The update that ends every training step: global-norm clipping, then AdamW at the scheduled
/// rate of each parameter group.
public final class Optimization {
    public let recipe: TrainingRecipe
    private let parameters: [Parameter]
    public let optimizer: AdamW
    public var step: Int { optimizer.step }

    public init(parameters: [Parameter], recipe: TrainingRecipe) {
        self.parameters = parameters
        self.recipe = recipe
        optimizer = AdamW(parameters: parameters, settings: recipe.adam)
    }

    /// Clips and applies the gradients; returns the norm before clipping and the peak rate used.
    public func update() -> (gradientNorm: Float, learningRate: Float) {
        let norm = clipGradients(parameters, maxNorm: recipe.gradientClip)
        let factor = recipe.schedule.factor(at: step)
        optimizer.update { group in factor * (self.recipe.groupLearningRates[group] ?? self.recipe.learningRate) }
        return (norm, factor * recipe.learningRate)
    }
}

/// Adds each replica's gradients into the model's, replica after replica: a fixed order, so the
/// sums are bit-reproducible.
func addReplicaGradients(into parameters: [Parameter], from replicas: [[Parameter]]) {
    Parallel.forEach(parameters.count) { i, _ in
        let total = parameters[i].grad
        for r in replicas { for j in 0..<total.count { total.data[j] += r[i].grad.data[j] } }
    }
}

/// Trains a decoder on token sequences: forward, backward, clip, AdamW, schedule.
///
/// A batch is split by sequences into one shard per core (`Parallel.workers`); each shard is one
/// packed pass of the executor on its own core against a replica of the model that shares the
/// weights, and the replicas' gradients are summed in a fixed order. Every step is therefore
/// deterministic for a given core count.
public final class Trainer {
    public let model: LlamaModel
    private let optimization: Optimization
    private let replicas: [LlamaModel]
    public var step: Int { optimization.step }

    public init(model: LlamaModel, recipe: TrainingRecipe) {
        self.model = model
        optimization = Optimization(parameters: model.parameters, recipe: recipe)
        replicas = [model] + (1..<Parallel.workers).map { _ in model.replica() }
    }

    /// One optimisation step on `batch`; returns the loss before the update.
    @discardableResult
    public func train(on batch: TokenBatch) -> StepReport {
        let shards = split(batch, into: replicas.count)
        let passes = shards.indices.map { TextPass(model: replicas[$0], batch: shards[$0]) }
        for replica in replicas.prefix(shards.count) { replica.zeroGradients() }

        Parallel.forEach(passes.count) { i, _ in passes[i].forward() }
        let counted = passes.reduce(0) { $0 + $1.countedTargets }
        let lossSum = passes.reduce(0.0) { $0 + $1.lossSum }
        Parallel.forEach(passes.count) { i, _ in passes[i].backward(normalizer: Float(counted)) }
        addReplicaGradients(into: model.parameters, from: replicas[1..<shards.count].map(\.parameters))

        let index = step, (norm, rate) = optimization.update()
        return StepReport(step: index, loss: counted > 0 ? Float(lossSum / Double(counted)) : 0, gradientNorm: norm,
                          learningRate: rate, tokens: batch.tokenCount)
    }

    /// Consecutive runs of sequences with about equal token counts, at most `count` of them.
    private func split(_ batch: TokenBatch, into count: Int) -> [TokenBatch] {
        let total = batch.tokenCount
        var shards: [TokenBatch] = [], current = TokenBatch(inputs: [], targets: []), done = 0
        for (input, target) in zip(batch.inputs, batch.targets) {
            current.inputs.append(input); current.targets.append(target)
            done += input.count
            if shards.count < count - 1, done * count >= total * (shards.count + 1) {
                shards.append(current)
                current = TokenBatch(inputs: [], targets: [])
            }
        }
        if !current.inputs.isEmpty || shards.isEmpty { shards.append(current) }
        return shards
    }
}
