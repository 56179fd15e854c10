import ArgumentParser
import Decoder
import Foundation
import Kernels
import LayerGraph
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a multimodal model on the benchmark mix in two stages (resumable from --out).")

    @Option(help: "Scale: \(MultimodalRunConfig.scalePresets.joined(separator: ", ")) — the decoder's shape, vision geometry and recipe.")
    var preset = "small"
    @Option(help: "Variant in the text form, e.g. 'proxyv(r=4)@from:4'.")
    var variant = "baseline"
    @Option(help: "Optimisation steps of stage 2 (default from the preset).")
    var steps: Int?
    @Option(help: "Steps of language pretraining (the decoder reads each image's caption, not the image; default from the preset; 0 with --finetune-from).")
    var languageSteps: Int?
    @Option(name: .customLong("stage1-steps"), help: "Steps of stage 1 (projector, newline and the variant's modules; decoder frozen; default from the preset; 0 with --finetune-from).")
    var stage1Steps: Int?
    @Option(help: "Write a resumable checkpoint every this many steps.")
    var checkpointEvery: Int?
    @Option(help: "The first stage with --variant in place; the stages before it train the baseline graph (2: the paper's finetuning, FT).")
    var variantStage: Int?
    @Option(help: "Start from the trained weights of the run in this directory, --variant's new modules fresh (stage 2 only unless --stage1-steps is given).")
    var finetuneFrom: String?
    @Option(help: "Vision grid side G (G×G patches a view, images of 2G×2G patches; default from the preset).")
    var grid: Int?
    @Option(help: "Views per image, 1 (the image whole at full detail) to 5 (a base view and four quadrants; default from the preset).")
    var crops: Int?
    @Option(help: "Questions asked about each training image, its first and follow-ups (default from the preset).")
    var turns: Int?
    @Option(help: "Samples per batch (default from the preset).")
    var batchSize: Int?
    @Option(help: "Peak learning rate of stage 2 (default from the preset).")
    var learningRate: Float?
    @Option(help: "Seed for weights and data.")
    var seed: UInt64 = 1
    @Option(help: "Directory for checkpoint.safetensors, train_log.csv and model.safetensors.")
    var out: String
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        for (value, option) in [(steps, "--steps"), (languageSteps, "--language-steps"), (stage1Steps, "--stage1-steps")] {
            if let value { try check(value, in: 0...10_000_000, option) }
        }
        if let batchSize { try check(batchSize, in: 1...4096, "--batch-size") }
        if let checkpointEvery { try check(checkpointEvery, in: 1...10_000_000, "--checkpoint-every") }
        if let grid { try check(grid, in: 1...512, "--grid") }
        if let turns { try check(turns, in: 1...64, "--turns") }
        if let learningRate, !(learningRate.isFinite && learningRate > 0) { throw ValidationError("--learning-rate must be a positive number, got \(learningRate)") }
    }

    func run() throws {
        compute.apply()
        let name = preset
        guard var config = MultimodalRunConfig.preset(name, variant: variant, seed: seed) else {
            throw ValidationError("unknown preset '\(name)'; expected one of \(MultimodalRunConfig.scalePresets)")
        }
        if let steps { config.stage2Steps = steps }
        if let stage1Steps { config.stage1Steps = stage1Steps }
        if let languageSteps { config.languageSteps = languageSteps }
        if let batchSize { config.batchSize = batchSize }
        if let grid { config.grid = grid }
        if let crops { config.crops = crops }
        if let turns { config.turns = turns }
        if let learningRate { config.stage2LearningRate = learningRate }
        if let checkpointEvery { config.checkpointEvery = checkpointEvery }
        config.variantStage = variantStage
        guard (1...5).contains(config.crops), config.grid > 0, config.turns > 0, (0...2).contains(variantStage ?? 0) else {
            throw ValidationError("--crops must be 1 to 5, --grid and --turns positive, --variant-stage 0 to 2")
        }
        if let base = finetuneFrom {
            // The base run fixes the model: shape, vision geometry and encoder seed.
            let baseConfig = try reportingBadInput { try MultimodalRun.configuration(directory: base) }
            (config.preset, config.grid, config.patch, config.crops, config.features, config.seed) =
                (baseConfig.preset, baseConfig.grid, baseConfig.patch, baseConfig.crops, baseConfig.features, baseConfig.seed)
            config.stage1Steps = stage1Steps ?? 0
            config.languageSteps = languageSteps ?? 0
            config.finetuneFrom = base
        }
        let run = try reportingBadInput { try MultimodalRun(config: config, directory: out) }
        let progress = Progress(total: config.totalSteps, label: "train")
        var recent: [Float] = [], tokens = 0
        let start = Date()
        try reportingBadInput {
            try run.train { r in
                recent = Array((recent + [r.loss]).suffix(10))
                tokens += r.tokens
                progress.update(done: r.step + 1, status: String(format: "stage %d loss %.4f, %.0f tokens/s", config.stage(at: r.step),
                                                                  recent.reduce(0, +) / Float(recent.count), Double(tokens) / Date().timeIntervalSince(start)))
            }
        }
        print("wrote \(run.modelPath)")
    }
}

/// A decoder shape by name (`--model`).
func decoderShape(_ name: String) throws -> LlamaConfig {
    guard let config = LlamaConfig.presets[name] else {
        throw ValidationError("unknown model '\(name)'; expected one of \(LlamaConfig.presets.keys.sorted())")
    }
    return config
}
