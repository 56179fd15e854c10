import ArgumentParser
import Decoder
import Foundation
import Kernels
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a multimodal model on the benchmark mix (two stages), or a decoder on a toy sequence task (--task).")

    @Option(help: "Toy task instead of the multimodal model: \(ToyTask.allCases.map(\.rawValue).joined(separator: ", ")).")
    var task: ToyTask?
    @Option(help: "Scale: \(MultimodalRunConfig.scalePresets.joined(separator: ", ")) — the model's shape and, multimodal, its vision geometry and recipe (default: tiny for toy tasks, small otherwise).")
    var preset: String?
    @Option(help: "Optimisation steps (toy default 300; multimodal: of stage 2, default from the preset).")
    var steps: Int?
    @Option(help: "Multimodal: variant in the text form, e.g. 'proxyv(r=4)@from:4'.")
    var variant = "baseline"
    @Option(help: "Multimodal: steps of language pretraining (the decoder reads each image's caption, not the image; default from the preset, FT 0).")
    var languageSteps: Int?
    @Option(name: .customLong("stage1-steps"), help: "Multimodal: steps of stage 1 (projector, newline and the variant's modules; decoder frozen; default from the preset, FT 0).")
    var stage1Steps: Int?
    @Option(help: "Multimodal: write a resumable checkpoint every this many steps.")
    var checkpointEvery: Int?
    @Option(help: "Multimodal FT: finetune the trained run in this directory with --variant (stage 2 only unless --stage1-steps is given).")
    var finetuneFrom: String?
    @Option(help: "Multimodal: vision grid side G (G×G patches a view, images of 2G×2G patches; default from the preset).")
    var grid: Int?
    @Option(help: "Multimodal: views per image, 1 (the image whole at full detail) to 5 (a base view and four quadrants; default from the preset).")
    var crops: Int?
    @Option(help: "Multimodal: questions asked about each training image, its first and follow-ups (default from the preset).")
    var turns: Int?
    @Option(help: "Sequences (multimodal: samples) per batch (toy default 16; multimodal default from the preset).")
    var batchSize: Int?
    @Option(help: "Shortest and longest prompt, as MIN...MAX.")
    var lengths = "4...12"
    @Option(help: "Peak learning rate (toy default 3e-3; multimodal: of stage 2, default from the preset).")
    var learningRate: Float?
    @Option(help: "Linear warm-up steps before the cosine decay.")
    var warmup = 20
    @Option(help: "Seed for weights and data.")
    var seed: UInt64 = 1
    @Option(help: "Toy task: start from this checkpoint instead of fresh weights (its shape overrides --preset).")
    var initFrom: String?
    @Option(help: "Directory for model.safetensors and train_log.csv.")
    var out: String
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        guard let task else { return try trainMultimodal() }
        let model = try initFrom.map { path in try reportingBadInput { try LlamaModel.load(from: path) } }
            ?? LlamaModel(config: try presetConfig(preset ?? "tiny"), seed: seed)
        let config = model.config
        let bounds = lengths.split(separator: ".", omittingEmptySubsequences: true).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] >= 1, bounds[0] <= bounds[1] else {
            throw ValidationError("--lengths must look like 4...12, got '\(lengths)'")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let steps = self.steps ?? 300, batchSize = self.batchSize ?? 16
        let trainer = Trainer(model: model, recipe: TrainingRecipe(steps: steps, learningRate: learningRate ?? 3e-3, warmupSteps: warmup))
        var rng = SeededGenerator(seed: seed &+ 1)
        let progress = Progress(total: steps, label: "train")
        var log = "step,loss,grad_norm,learning_rate\n"
        var first: Float?, recent: [Float] = []
        for _ in 0..<steps {
            let batch = task.batch(count: batchSize, lengths: bounds[0]...bounds[1], vocab: config.vocab, rng: &rng)
            let r = trainer.train(on: batch)
            first = first ?? r.loss
            recent = Array((recent + [r.loss]).suffix(10))
            log += "\(r.step),\(r.loss),\(r.gradientNorm),\(r.learningRate)\n"
            progress.update(done: r.step + 1, status: String(format: "loss %.4f", recent.reduce(0, +) / Float(recent.count)))
        }
        let path = (out as NSString).appendingPathComponent("model.safetensors")
        try reportingBadInput { try model.save(to: path) }
        try log.write(toFile: (out as NSString).appendingPathComponent("train_log.csv"), atomically: true, encoding: .utf8)

        var heldOut = SeededGenerator(seed: seed &+ 1_000_003)
        let test = task.batch(count: 256, lengths: bounds[0]...bounds[1], vocab: config.vocab, rng: &heldOut)
        let accuracy = answerAccuracy(model: model, batch: test)
        print(String(format: "loss %.4f (first step) -> %.4f (mean of last 10 steps)", first ?? 0, recent.reduce(0, +) / Float(max(1, recent.count))))
        print(String(format: "answer-token accuracy on 256 held-out sequences: %.1f%% (teacher-forced argmax)", 100 * accuracy))
        print("wrote \(path)")
    }
}

func presetConfig(_ name: String) throws -> LlamaConfig {
    guard let config = LlamaConfig.presets[name] else {
        throw ValidationError("unknown preset '\(name)'; expected one of \(LlamaConfig.presets.keys.sorted())")
    }
    return config
}

extension Train {
    /// The multimodal run: language pretraining, stage 1, then stage 2 on the benchmark mix, resumable from `--out`.
    func trainMultimodal() throws {
        if initFrom != nil { throw ValidationError("--init-from works with --task; multimodal runs start from --seed (or resume from --out)") }
        let name = preset ?? "small"
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
        guard (1...5).contains(config.crops), config.grid > 0, config.turns > 0 else { throw ValidationError("--crops must be 1 to 5, --grid and --turns positive") }
        if let base = finetuneFrom {
            // The base run fixes the model: shape, vision geometry and encoder seed.
            let baseConfig = try reportingBadInput { try MultimodalRun.configuration(directory: base) }
            (config.preset, config.grid, config.patch, config.crops, config.features, config.seed) =
                (baseConfig.preset, baseConfig.grid, baseConfig.patch, baseConfig.crops, baseConfig.features, baseConfig.seed)
            config.stage1Steps = stage1Steps ?? 0
            config.languageSteps = languageSteps ?? 0
            config.finetuneFrom = base
        }
        _ = try presetConfig(config.preset)
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

/// Fraction of scored positions whose argmax logit is the target.
func answerAccuracy(model: LlamaModel, batch: TokenBatch) -> Double {
    let pass = TextPass(model: model, batch: batch, keepsForBackward: false)
    pass.forward()
    let vocab = model.config.vocab
    var right = 0, scored = 0
    for (row, target) in batch.targets.joined().enumerated() where target >= 0 {
        let logits = UnsafeBufferPointer(start: pass.logits.data + row * vocab, count: vocab)
        if logits.indices.max(by: { logits[$0] < logits[$1] }) == Int(target) { right += 1 }
        scored += 1
    }
    return Double(right) / Double(max(scored, 1))
}

extension ToyTask: ExpressibleByArgument {}
