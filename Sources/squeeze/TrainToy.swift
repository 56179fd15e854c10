import ArgumentParser
import Decoder
import Foundation
import Kernels
import LayerGraph
import Training

struct TrainToy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-toy", abstract: "Train a decoder on a toy sequence task (copy, reverse): the decoder alone, no images.")

    @Option(help: "Toy task: \(ToyTask.allCases.map(\.rawValue).joined(separator: ", ")).")
    var task: ToyTask
    @Option(help: "Decoder shape: \(LlamaConfig.presets.keys.sorted().joined(separator: ", ")).")
    var model = "tiny"
    @Option(help: "Optimisation steps.")
    var steps = 300
    @Option(help: "Sequences per batch.")
    var batchSize = 16
    @Option(help: "Shortest and longest prompt, as MIN...MAX.")
    var lengths = "4...12"
    @Option(help: "Peak learning rate.")
    var learningRate: Float = 3e-3
    @Option(help: "Linear warm-up steps before the cosine decay.")
    var warmup = 20

    func validate() throws {
        try check(steps, in: 0...10_000_000, "--steps")
        try check(batchSize, in: 1...4096, "--batch-size")
        try check(warmup, in: 0...10_000_000, "--warmup")
        guard learningRate.isFinite, learningRate > 0 else { throw ValidationError("--learning-rate must be a positive number, got \(learningRate)") }
    }
    @Option(help: "Seed for weights and data.")
    var seed: UInt64 = 1
    @Option(help: "Start from this checkpoint instead of fresh weights (its shape overrides --model).")
    var initFrom: String?
    @Option(help: "Directory for model.safetensors and train_log.csv.")
    var out: String
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        let decoder = try initFrom.map { path in try reportingBadInput { try LlamaModel.load(from: path) } }
            ?? LlamaModel(config: try decoderShape(model), seed: seed)
        let config = decoder.config
        let bounds = lengths.split(separator: ".", omittingEmptySubsequences: true).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] >= 1, bounds[0] <= bounds[1] else {
            throw ValidationError("--lengths must look like 4...12, got '\(lengths)'")
        }
        try DurableWrite.makeDirectory(out)
        let trainer = Trainer(model: decoder, recipe: TrainingRecipe(steps: steps, learningRate: learningRate, warmupSteps: warmup))
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
        try reportingBadInput { try decoder.save(to: path) }
        try DurableWrite.replace((out as NSString).appendingPathComponent("train_log.csv"), with: Data(log.utf8))

        var heldOut = SeededGenerator(seed: seed &+ 1_000_003)
        let test = task.batch(count: 256, lengths: bounds[0]...bounds[1], vocab: config.vocab, rng: &heldOut)
        let accuracy = answerAccuracy(model: decoder, batch: test)
        print(String(format: "loss %.4f (first step) -> %.4f (mean of last 10 steps)", first ?? 0, recent.reduce(0, +) / Float(max(1, recent.count))))
        print(String(format: "answer-token accuracy on 256 held-out sequences: %.1f%% (teacher-forced argmax)", 100 * accuracy))
        print("wrote \(path)")
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
