import Benchmarks
import Decoder
import Foundation
import Kernels
import LayerGraph

/// Everything that determines a multimodal training run; a checkpoint resumes only the same run.
public struct MultimodalRunConfig: Codable, Equatable, Sendable {
    public var preset: String
    public var variant: String
    public var grid = 8, patch = 4, crops = 5, features = 64
    /// Language pretraining ("stage 0"), the stand-in for the pretrained LLM the paper starts
    /// from: the decoder learns the task mix from each image's caption, without the image.
    public var languageSteps = 0
    public var stage1Steps: Int, stage2Steps: Int, batchSize: Int
    /// Questions asked about each training image: its first and up to `turns − 1` follow-ups.
    public var turns = 1
    /// How much each task's samples weigh in the loss, by task name (1 where unnamed). A sample's
    /// term is its answers' mean token loss, so a task whose answers spend many tokens on what
    /// follows from a few (a box: four numbers, the second pair fixed by the first) weighs less
    /// per informative token than a one-word answer.
    public var lossWeights: [String: Float] = [:]
    /// Stage 1 trains the projector, newline and the variant's modules; stage 2 everything.
    public var languageLearningRate: Float = 1e-3, stage1LearningRate: Float = 1e-3, stage2LearningRate: Float = 3e-4
    public var checkpointEvery: Int
    public var seed: UInt64
    /// The run directory whose trained weights this run starts from (the variant's new modules
    /// start fresh). Its shape, vision geometry and encoder seed are this run's too.
    public var finetuneFrom: String?
    /// The first stage trained with the variant in place; the stages before it train the baseline
    /// graph. 2 is the paper's finetuning (FT): the variant starts from its baseline's stage-1
    /// weights and trains with its baseline's stage-2 budget. Nil: every stage.
    public var variantStage: Int?

    public init(preset: String, variant: String, stage1Steps: Int, stage2Steps: Int, batchSize: Int, checkpointEvery: Int, seed: UInt64) {
        self.preset = preset; self.variant = variant; self.stage1Steps = stage1Steps; self.stage2Steps = stage2Steps
        self.batchSize = batchSize; self.checkpointEvery = checkpointEvery; self.seed = seed
    }

    public var totalSteps: Int { languageSteps + stage1Steps + stage2Steps }

    /// A generous estimate of the memory one training step (or one chunk of 8 evaluated prompts)
    /// takes, so that a configuration that cannot fit is refused before anything is allocated:
    /// the batch's images, every layer's saved activations, one layer's attention scores (in
    /// query blocks of at most 512 rows), the logits, and the weights with their Adam moments.
    public var estimatedStepBytes: Double {
        guard let d = LlamaConfig.presets[preset] else { return 0 }
        let batch = Double(max(batchSize, 8)), side = Double(geometry.imageSide)
        let tokens = Double(crops * grid * (grid + 1) + 128)
        let (hidden, ffn, layers) = (Double(d.hidden), Double(d.ffn), Double(d.layers))
        let images = batch * side * side * 3
        let activations = batch * tokens * layers * (6 * hidden + 3 * ffn)
        let scores = batch * Double(d.heads) * min(tokens, 512) * tokens
        let logits = 2 * batch * tokens * 512
        let weights = 4 * (layers * (4 * hidden * hidden + 3 * hidden * ffn) + 2 * 512 * hidden)
        return 4 * (images + activations + scores + logits + weights)
    }

    /// What is out of bounds, if anything, before a model of this configuration is built: the
    /// same bounds a manifest's fields have (a file's metadata can say anything).
    public var outOfBounds: String? {
        let integers: [(String, Int, ClosedRange<Int>)] = [
            ("grid", grid, 1...512), ("patch", patch, 1...64), ("crops", crops, 1...5), ("features", features, 1...4096),
            ("languageSteps", languageSteps, 0...10_000_000), ("stage1Steps", stage1Steps, 0...10_000_000),
            ("stage2Steps", stage2Steps, 0...10_000_000), ("batchSize", batchSize, 1...4096), ("turns", turns, 1...64),
            ("checkpointEvery", checkpointEvery, 1...10_000_000), ("variantStage", variantStage ?? 0, 0...2)]
        if let (name, value, range) = integers.first(where: { !$0.2.contains($0.1) }) {
            return "\(name) \(value) is outside \(range.lowerBound) to \(range.upperBound)"
        }
        let rates = [("languageLearningRate", languageLearningRate), ("stage1LearningRate", stage1LearningRate), ("stage2LearningRate", stage2LearningRate)]
        if let (name, value) = rates.first(where: { !$0.1.isFinite || $0.1 < 0 }) { return "\(name) \(value) is not a finite rate ≥ 0" }
        if LlamaConfig.presets[preset] == nil { return "unknown preset '\(preset)'" }
        return nil
    }

    /// The stage a step belongs to: 0 (language pretraining), 1 or 2.
    public func stage(at step: Int) -> Int { step < languageSteps ? 0 : step < languageSteps + stage1Steps ? 1 : 2 }
    public var geometry: VisionGeometry { VisionGeometry(grid: grid, patch: patch, crops: crops) }

    /// The paper's recipe, scaled down: cosine with 3 % warm-up; stage 1 leaves the decoder at
    /// rate 0; stage 0 trains the decoder alone (nothing else is in a text-only pass).
    public func recipe(stage: Int) -> TrainingRecipe {
        let (steps, rate) = [(languageSteps, languageLearningRate), (stage1Steps, stage1LearningRate), (stage2Steps, stage2LearningRate)][stage]
        let frozen = [["projector", "variant"], ["decoder"], []][stage]
        return TrainingRecipe(steps: steps, learningRate: rate, groupLearningRates: Dictionary(uniqueKeysWithValues: frozen.map { ($0, 0) }),
                              warmupSteps: max(1, steps * 3 / 100), adam: .init(weightDecay: 0))
    }

    /// The task mix of stages 0 and 2: the suite and the easy probes.
    static let mix = BenchmarkTask.all + BenchmarkTask.probes

    /// Stage 1 reads text from images (transcription); stages 0 and 2 are the whole task mix,
    /// the easy probes included (stage 0 reads each image's caption instead). Drawn on every core:
    /// rendering the images is otherwise the step's largest serial part.
    public func batch(step: Int) -> [Sample] {
        let tasks = stage(at: step) == 1 ? ["ocr", "doc-parse"].compactMap(BenchmarkTask.named) : Self.mix
        return Parallel.map(batchSize) { j in
            let i = step * batchSize + j
            var sample = tasks[i % tasks.count].sample(i / tasks.count, split: .train, side: geometry.imageSide)
            sample.followUps = Array(sample.followUps.prefix(turns - 1))
            return sample
        }
    }
}

extension MultimodalModel {
    /// The model a run configuration describes, with fresh seeded weights: the encoder stand-in,
    /// projector and newline, and the preset's decoder under the run's variant.
    public convenience init(run config: MultimodalRunConfig) throws {
        guard var decoder = LlamaConfig.presets[config.preset] else { preconditionFailure("unknown preset '\(config.preset)'") }
        decoder.vocab = Tokenizer().vocabularySize
        let graph = try LayerGraph(spec: VariantSpec(config.variant), layers: decoder.layers, hidden: decoder.hidden, grid: config.grid,
                                   features: config.features)
        self.init(encoder: VisionEncoder(geometry: config.geometry, features: config.features, seed: config.seed),
                  language: GraphModel(decoder: LlamaModel(config: decoder, seed: config.seed &+ 1), graph: graph, seed: config.seed &+ 2),
                  seed: config.seed &+ 3)
    }
}

/// A multimodal training run in a directory: `checkpoint.safetensors` (weights, optimiser state,
/// step and configuration, written atomically every N steps), `train_log.csv`, and at the end
/// `model.safetensors`. Started again on the same directory, it resumes from the checkpoint.
public final class MultimodalRun {
    public let config: MultimodalRunConfig
    public let directory: String
    public let model: MultimodalModel

    public init(config: MultimodalRunConfig, directory: String) throws {
        self.config = config
        self.directory = directory
        if let problem = config.outOfBounds { throw RunError(file: directory, problem: "run configuration: \(problem)") }
        let needed = config.estimatedStepBytes, memory = Double(ProcessInfo.processInfo.physicalMemory)
        guard needed < memory else {
            throw RunError(file: directory, problem: String(format: "a step of this run would need about %.0f GiB of memory (batch %d, %d×%d images, grid %d, %d crops); this machine has %.0f GiB",
                                                            needed / 1_073_741_824, max(config.batchSize, 8), config.geometry.imageSide, config.geometry.imageSide,
                                                            config.grid, config.crops, memory / 1_073_741_824))
        }
        model = try MultimodalModel(run: config)
    }

    var checkpointPath: String { (directory as NSString).appendingPathComponent("checkpoint.safetensors") }
    var logPath: String { (directory as NSString).appendingPathComponent("train_log.csv") }
    public var modelPath: String { (directory as NSString).appendingPathComponent("model.safetensors") }

    /// The step the directory's checkpoint was written at; nil if there is none.
    public var checkpointStep: Int? {
        (try? SafetensorsFile(path: checkpointPath)).flatMap { Int($0.metadata["squeeze.step"] ?? "") }
    }

    /// Trains to the end, resuming from a checkpoint if there is one; `report` sees every step.
    public func train(report: (StepReport) -> Void = { _ in }) throws {
        try DurableWrite.makeDirectory(directory)
        let tasks = MultimodalRunConfig.mix.map(\.name)
        var step = 0, log = "step,stage,loss,grad_norm,learning_rate," + tasks.map { "loss_" + $0 }.joined(separator: ",") + "\n"
        var trainer: MultimodalTrainer?
        // Before the variant's stage, the same weights under the baseline graph.
        let baselineView = (config.variantStage ?? 0) > 0 ? try model.trainingFree(VariantSpec("baseline")) : model
        func makeTrainer(stage: Int) -> MultimodalTrainer {
            MultimodalTrainer(model: stage < config.variantStage ?? 0 ? baselineView : model, recipe: config.recipe(stage: stage))
        }
        if let base = config.finetuneFrom, !FileManager.default.fileExists(atPath: checkpointPath) {
            try fillWeights(from: SafetensorsFile(path: (base as NSString).appendingPathComponent("model.safetensors")), skippingNewModules: true)
        }
        if FileManager.default.fileExists(atPath: checkpointPath) {
            let (saved, state, savedStep) = try loadCheckpoint()
            step = savedStep
            // The optimiser state is that of the stage the checkpoint was written in.
            trainer = makeTrainer(stage: config.stage(at: max(0, step - 1)))
            try trainer!.optimization.optimizer.restore(tensors: state, step: saved)
            log = (try? String(contentsOfFile: logPath, encoding: .utf8))
                .map { $0.split(separator: "\n").prefix(step + 1).joined(separator: "\n") + "\n" } ?? log
        }
        // A stop request (StopRequest) ends the run at a step's end, with a checkpoint of it.
        try StopRequest.shared.whileTraining {
            while step < config.totalSteps {
                let stage = config.stage(at: step)
                if trainer == nil || step > 0 && config.stage(at: step - 1) != stage {
                    trainer = makeTrainer(stage: stage)
                }
                let batch = config.batch(step: step), r = trainer!.train(on: batch, weights: batch.map { config.lossWeights[$0.task] ?? 1 }, seeingImages: stage > 0)
                // A diverged step stops the run; its last checkpoint (written before it) stays as it was.
                guard r.loss.isFinite, r.gradientNorm.isFinite else {
                    throw RunError(file: directory, problem: "training diverged at step \(step) (stage \(stage)): loss \(r.loss), gradient norm \(r.gradientNorm); the last checkpoint is kept")
                }
                step += 1
                // Each task's mean loss in the step (empty where the batch had none of it).
                let byTask = Dictionary(grouping: zip(batch, r.sampleLosses), by: \.0.task).mapValues { $0.map(\.1).reduce(0, +) / Float($0.count) }
                log += "\(step - 1),\(stage),\(r.loss),\(r.gradientNorm),\(r.learningRate)," + tasks.map { byTask[$0].map { "\($0)" } ?? "" }.joined(separator: ",") + "\n"
                report(StepReport(step: step - 1, loss: r.loss, gradientNorm: r.gradientNorm, learningRate: r.learningRate, tokens: r.tokens))
                let stopping = StopRequest.shared.isRequested
                if step % max(1, config.checkpointEvery) == 0 || step == config.totalSteps || stopping {
                    try DurableWrite.replace(logPath, with: Data(log.utf8))
                    try saveCheckpoint(step: step, optimizer: trainer!.optimization.optimizer)
                }
                if stopping && step < config.totalSteps { throw TrainingStopped(directory: directory, step: step, totalSteps: config.totalSteps) }
            }
        }
        try SafetensorsFile.write(floats: model.parameters.map { ($0.name, $0.value) }, metadata: try metadata(step: step), to: modelPath)
    }

    private func metadata(step: Int) throws -> [String: String] {
        ["format": "pt", "squeeze.run": String(decoding: try sortedJSON(config), as: UTF8.self), "squeeze.step": String(step)]
    }

    private func saveCheckpoint(step: Int, optimizer: AdamW) throws {
        let state = optimizer.state
        var meta = try metadata(step: step)
        meta["squeeze.optimizer_step"] = String(state.step)
        try SafetensorsFile.write(floats: model.parameters.map { ($0.name, $0.value) } + state.tensors, metadata: meta, to: checkpointPath)
    }

    /// The run configuration a file of this run was written with.
    public static func savedConfig(_ file: SafetensorsFile) throws -> MultimodalRunConfig {
        guard let json = file.metadata["squeeze.run"] else {
            throw RunError(file: file.path, problem: "metadata lacks the run configuration ('squeeze.run')")
        }
        let config: MultimodalRunConfig
        do { config = try JSONDecoder().decode(MultimodalRunConfig.self, from: Data(json.utf8)) } catch {
            throw RunError(file: file.path, problem: "its run configuration ('squeeze.run') is not one this Squeeze reads (written by an earlier version?): \(error)")
        }
        if let problem = config.outOfBounds { throw RunError(file: file.path, problem: "its run configuration ('squeeze.run'): \(problem)") }
        return config
    }

    /// Every weight of the model from a file of this run (or, finetuning, every weight but the
    /// variant's new modules from the base run's file).
    private func fillWeights(from file: SafetensorsFile, skippingNewModules: Bool = false) throws {
        try file.fill(model.parameters.filter { !(skippingNewModules && $0.group == "variant" && file.entries[$0.name] == nil) })
    }

    /// The configuration of a finished run directory.
    public static func configuration(directory: String) throws -> MultimodalRunConfig {
        try savedConfig(SafetensorsFile(path: (directory as NSString).appendingPathComponent("model.safetensors")))
    }

    /// The trained model of a finished run directory.
    public static func load(directory: String) throws -> MultimodalRun {
        let path = (directory as NSString).appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(path: path)
        let run = try MultimodalRun(config: try savedConfig(file), directory: directory)
        try run.fillWeights(from: file)
        return run
    }

    /// Weights into the model; returns the optimiser moments, the optimiser's step and the run's step.
    private func loadCheckpoint() throws -> (optimizerStep: Int, state: [String: Tensor], step: Int) {
        let file = try SafetensorsFile(path: checkpointPath)
        guard try MultimodalRun.savedConfig(file) == config else {
            throw RunError(file: checkpointPath, problem: "was written by a run with another configuration")
        }
        guard let step = Int(file.metadata["squeeze.step"] ?? ""), let optimizerStep = Int(file.metadata["squeeze.optimizer_step"] ?? "") else {
            throw RunError(file: checkpointPath, problem: "metadata lacks the step")
        }
        try fillWeights(from: file)
        var state: [String: Tensor] = [:]
        for name in file.entries.keys where name.hasPrefix("adam.") { state[name] = try file.tensor(name) }
        return (optimizerStep, state, step)
    }
}

/// A run directory that cannot be used.
public struct RunError: InputError {
    public let file: String, problem: String
    public init(file: String, problem: String) { self.file = file; self.problem = problem }
    public var description: String { "\(file): \(problem)" }
}
