import Benchmarks
import Foundation
import Kernels
import LayerGraph
import Training

/// How a variant's model is obtained (the paper's three ways).
public enum RunMode: String, Codable, CaseIterable, Sendable {
    /// Both training stages with the variant in place.
    case full
    /// A trained baseline with the variant applied only at inference.
    case tf
    /// Finetuned: the baseline's stages 0 and 1, then stage 2 with the variant in place — the
    /// paper's instruction tuning with the variant, from the same starting point and with the
    /// same budget as its baseline.
    case ft
}

/// The resolved configuration of one run: everything that determines its results. Its id is a
/// hash of this, so a run is recognised again in the store whatever manifest produced it.
public struct RunSpec: Codable, Equatable, Hashable, Sendable {
    public var preset: String
    public var variant: String
    public var mode: RunMode { didSet { code = RunSpec.code(mode) } }
    public var seed: UInt64
    public var languageSteps: Int, stage1Steps: Int, steps: Int, batchSize: Int, turns: Int
    public var languageLearningRate: Double, stage1LearningRate: Double, learningRate: Double
    /// How much each task's samples weigh in the loss (1 where unnamed).
    public var lossWeights: [String: Double]
    public var grid: Int, patch: Int, crops: Int, features: Int
    public var benchmarks: [String]
    public var samples: Int
    public var split: Split
    /// What else decides the run's results: the task generators and the encoder stand-in (hashes
    /// of what they produce, `BenchmarkTask.generatorFingerprint` and `VisionEncoder.fingerprint`)
    /// and the version of the model and training code (`modelCode`), so that a run made by other
    /// code is not taken as complete.
    public var code = RunSpec.code
    /// Bumped whenever the decoder, executor, optimiser or training loop changes what a run would
    /// give (the floats it computes; e.g. how a batch is dealt into shards).
    public static let modelCode = 14
    /// Bumped whenever what an FT run trains changes (2: the baseline's stages, then the
    /// variant's stage 2; 1 finetuned a fully trained baseline for a second stage 2).
    public static let finetuningCode = 2
    public static func code(_ mode: RunMode) -> String { mode == .ft ? code + ", finetuning \(finetuningCode)" : code }
    public static let code: String = {
        let encoder = VisionEncoder(geometry: VisionGeometry(grid: 4, patch: 4, crops: 5), features: 16, seed: 1)
        return String(format: "model %d, tasks %016llx, encoder %016llx", modelCode, BenchmarkTask.generatorFingerprint, encoder.fingerprint)
    }()

    /// A run of a scale preset with the preset's recipe and geometry.
    public init?(preset: String) {
        guard let c = MultimodalRunConfig.preset(preset) else { return nil }
        self.preset = preset; variant = "baseline"; mode = .full; seed = c.seed
        languageSteps = c.languageSteps; stage1Steps = c.stage1Steps; steps = c.stage2Steps; batchSize = c.batchSize; turns = c.turns
        // Through the shortest decimal form, so 3e-3 is 0.003 in the configuration, not 0.0030000000261.
        func decimal(_ x: Float) -> Double { Double("\(x)")! }
        languageLearningRate = decimal(c.languageLearningRate)
        stage1LearningRate = decimal(c.stage1LearningRate); learningRate = decimal(c.stage2LearningRate)
        lossWeights = c.lossWeights.mapValues(decimal)
        grid = c.grid; patch = c.patch; crops = c.crops; features = c.features
        benchmarks = BenchmarkTask.all.map(\.name); samples = 50; split = .val
    }

    /// Sixteen hex digits of a 64-bit FNV-1a hash of the configuration as sorted JSON.
    public var id: String {
        String(format: "%016llx", fnv1a(json.utf8))
    }

    public var json: String { String(decoding: (try? JSONEncoder.sorted.encode(self)) ?? Data(), as: UTF8.self) }

    public var isBaseline: Bool { variant == "baseline" }

    /// The id of the model the run evaluates: the configuration as trained (a TF run's is its
    /// baseline's), without what only the evaluation reads. Runs that train the same share the
    /// trained model in `work/<trainingID>/`, so evaluating it again on more samples or other
    /// benchmarks trains nothing.
    public var trainingID: String {
        var trained = mode == .tf ? base! : self
        (trained.benchmarks, trained.samples, trained.split) = ([], 0, .val)
        return trained.id
    }

    /// The baseline a TF or FT run is measured against (and a TF run evaluates): the same run
    /// with no variant, trained fully.
    public var base: RunSpec? {
        guard mode != .full else { return nil }
        var b = self
        (b.variant, b.mode) = ("baseline", .full)
        return b
    }

    /// The training run's configuration (TF runs train nothing).
    public func trainingConfig(checkpointEvery: Int) -> MultimodalRunConfig {
        var c = MultimodalRunConfig.preset(preset, variant: variant, seed: seed)!
        (c.languageSteps, c.stage1Steps, c.variantStage) = (languageSteps, stage1Steps, mode == .ft ? 2 : nil)
        (c.stage2Steps, c.batchSize, c.turns) = (steps, batchSize, turns)
        (c.languageLearningRate, c.stage1LearningRate, c.stage2LearningRate) = (Float(languageLearningRate), Float(stage1LearningRate), Float(learningRate))
        c.lossWeights = lossWeights.mapValues(Float.init)
        (c.grid, c.patch, c.crops, c.features, c.checkpointEvery) = (grid, patch, crops, features, checkpointEvery)
        return c
    }

    /// A one-line name for tables and logs.
    public var label: String { mode == .full || isBaseline ? variant : "\(variant) [\(mode.rawValue.uppercased())]" }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
