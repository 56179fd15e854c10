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
    /// A trained baseline finetuned (stage 2) with the variant in place.
    case ft
}

/// The resolved configuration of one run: everything that determines its results. Its id is a
/// hash of this, so a run is recognised again in the store whatever manifest produced it.
public struct RunSpec: Codable, Equatable, Hashable, Sendable {
    public var preset: String
    public var variant: String
    public var mode: RunMode
    public var seed: UInt64
    public var languageSteps: Int, stage1Steps: Int, steps: Int, batchSize: Int, turns: Int
    public var stage1LearningRate: Double, learningRate: Double
    public var grid: Int, crops: Int
    public var benchmarks: [String]
    public var samples: Int
    public var split: Split
    /// What code made the run's results: bumped whenever Squeeze changes what a run would give
    /// (the encoder stand-in, a task, the loss), so that an earlier run is not taken as complete.
    public var generation = RunSpec.generation
    public static let generation = 13

    /// A run of a scale preset with the preset's recipe and geometry.
    public init?(preset: String) {
        guard let c = MultimodalRunConfig.preset(preset) else { return nil }
        self.preset = preset; variant = "baseline"; mode = .full; seed = c.seed
        languageSteps = c.languageSteps; stage1Steps = c.stage1Steps; steps = c.stage2Steps; batchSize = c.batchSize; turns = c.turns
        // Through the shortest decimal form, so 3e-3 is 0.003 in the configuration, not 0.0030000000261.
        stage1LearningRate = Double("\(c.stage1LearningRate)")!; learningRate = Double("\(c.stage2LearningRate)")!
        grid = c.grid; crops = c.crops
        benchmarks = BenchmarkTask.all.map(\.name); samples = 50; split = .val
    }

    /// Sixteen hex digits of a 64-bit FNV-1a hash of the configuration as sorted JSON.
    public var id: String {
        String(format: "%016llx", fnv1a(json.utf8))
    }

    public var json: String { String(decoding: (try? JSONEncoder.sorted.encode(self)) ?? Data(), as: UTF8.self) }

    public var isBaseline: Bool { variant == "baseline" }

    /// The trained baseline a TF or FT run starts from: the same run with no variant, trained fully.
    public var base: RunSpec? {
        guard mode != .full else { return nil }
        var b = self
        (b.variant, b.mode) = ("baseline", .full)
        return b
    }

    /// The training run's configuration (TF runs train nothing).
    public func trainingConfig(checkpointEvery: Int, finetuneFrom: String?) -> MultimodalRunConfig {
        var c = MultimodalRunConfig.preset(preset, variant: variant, seed: seed)!
        (c.languageSteps, c.stage1Steps) = mode == .ft ? (0, 0) : (languageSteps, stage1Steps)
        (c.stage2Steps, c.batchSize, c.turns) = (steps, batchSize, turns)
        (c.stage1LearningRate, c.stage2LearningRate) = (Float(stage1LearningRate), Float(learningRate))
        (c.grid, c.crops, c.checkpointEvery, c.finetuneFrom) = (grid, crops, checkpointEvery, finetuneFrom)
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
