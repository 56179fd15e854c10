import ArgumentParser
import Decoder
import Foundation
import Kernels
import Training
import Benchmarks
import LayerGraph

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput on this machine: sgemm, one decoder layer, a training step.",
        subcommands: [Gemm.self, Layer.self, TrainStep.self, MultimodalStep.self])
}

/// Options of every benchmark.
struct BenchOptions: ParsableArguments {
    @Option(help: "Timed repetitions after one warm-up run (pairs of the work and its yardstick, in turn); medians are reported.")
    var reps = 10
    @Option(help: "Output: text or json.")
    var format: OutputFormat = .text
    @OptionGroup var compute: ComputeOptions
}

/// The sgemm yardstick at a piece of work's own shapes: the products it issues (recorded by
/// `BLAS.recordProducts`), replayed alone on random data. Products the work ran on several BLAS
/// threads are replayed so; those it ran single-threaded inside its parallel shards are replayed
/// one after another on one core and their time divided by the cores, as if they scaled
/// perfectly. (Replayed on all cores at once, thousands of small back-to-back products contend
/// in OpenBLAS's buffer allocator and run slower than inside the work itself.)
final class ProductReplay {
    let products: [BLAS.Product]
    private let a, b, c: Tensor

    init(_ products: [BLAS.Product]) {
        self.products = products
        var rng = SeededGenerator(seed: 9)
        a = Tensor(shape: [products.map { ($0.transA ? $0.k : $0.m) * $0.lda }.max() ?? 0], std: 1, rng: &rng)
        b = Tensor(shape: [products.map { ($0.transB ? $0.n : $0.k) * $0.ldb }.max() ?? 0], std: 1, rng: &rng)
        c = Tensor(shape: [products.map { $0.m * $0.ldc }.max() ?? 0])
    }

    var flops: Int { products.reduce(0) { $0 + 2 * $1.m * $1.n * $1.k } }

    /// Replays every product; returns the yardstick's seconds.
    func run() -> Double {
        func replay(_ products: [BLAS.Product]) {
            for p in products {
                BLAS.gemm(transA: p.transA, transB: p.transB, m: p.m, n: p.n, k: p.k, a: a.data, lda: p.lda, b: b.data, ldb: p.ldb,
                          c: c.data, ldc: p.ldc)
            }
        }
        let cores = BLAS.threads
        let single = products.filter { $0.threads == 1 }, threaded = products.filter { $0.threads > 1 }
        BLAS.threads = 1
        let serial = seconds { replay(single) }
        BLAS.threads = cores
        return serial / Double(cores) + seconds { replay(threaded) }
    }
}

/// A piece of work against its products replayed alone: the yardstick's line, then the work's (with
/// `fraction_of_sgemm`, the paired ratio, and `counts` per step as rates per second).
func pairedResults(name: String, reps: Int, perSecond counts: [String: Double] = [:], _ work: () -> Void) -> [BenchResult] {
    let replay = ProductReplay(BLAS.recordProducts(work))
    let paired = PairedTiming(reps: reps, work: work, yardstick: replay.run)
    let yardstick = BenchResult(name: "sgemm, the same \(replay.products.count) products alone", flops: replay.flops, seconds: paired.yardstick)
    var result = BenchResult(name: name, flops: replay.flops, seconds: paired.work)
    result.extra["fraction_of_sgemm"] = paired.ratio
    for (key, count) in counts { result.extra[key] = count / paired.work.median }
    return [yardstick, result]
}

/// One benchmark line: what ran, how long it took, and the rates that follow.
struct BenchResult: Codable {
    let name: String
    let flops: Int
    let seconds: Timing
    var gflopsPerSecond: Double { Double(flops) / seconds.median / 1e9 }
    var extra: [String: Double] = [:]

    enum CodingKeys: String, CodingKey { case name, flops, seconds, gflopsPerSecond = "gflops_per_second", extra }
    func encode(to e: Encoder) throws {
        var c = e.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name); try c.encode(flops, forKey: .flops); try c.encode(seconds, forKey: .seconds)
        try c.encode(gflopsPerSecond, forKey: .gflopsPerSecond); try c.encode(extra, forKey: .extra)
    }
    init(name: String, flops: Int, seconds: Timing, extra: [String: Double] = [:]) {
        self.name = name; self.flops = flops; self.seconds = seconds; self.extra = extra
    }
    init(from decoder: Decoder) throws { fatalError("results are only written") }
}

func printResults(_ results: [BenchResult], format: OutputFormat, threads: Int) {
    switch format {
    case .json:
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        struct Report: Encodable { let threads: Int; let results: [BenchResult] }
        print(String(decoding: try! encoder.encode(Report(threads: threads, results: results)), as: UTF8.self))
    case .text:
        print("OpenBLAS threads: \(threads)")
        for r in results {
            var line = String(format: "%-44@ %8.1f GFLOP/s   median %.4f s (min %.4f, max %.4f, %d runs)",
                              r.name as NSString, r.gflopsPerSecond, r.seconds.median, r.seconds.min, r.seconds.max, r.seconds.reps)
            for (k, v) in r.extra.sorted(by: { $0.key < $1.key }) { line += String(format: "   %@ %.3f", k as NSString, v) }
            print(line)
        }
    }
}

/// sgemm throughput of C[m,n] = A[m,k]·B[n,k]ᵀ, the product shape of a linear layer.
func gemmResult(name: String, m: Int, n: Int, k: Int, reps: Int) -> BenchResult {
    var rng = SeededGenerator(seed: 7)
    let a = Tensor(shape: [m, k], std: 1, rng: &rng), b = Tensor(shape: [n, k], std: 1, rng: &rng), c = Tensor(shape: [m, n])
    let time = Timing(reps: reps) {
        BLAS.gemm(transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: k, c: c.data, ldc: n)
    }
    return BenchResult(name: "\(name) \(m)x\(k)·\(n)x\(k)ᵀ", flops: 2 * m * n * k, seconds: time)
}

extension Bench {
    struct Gemm: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "sgemm GFLOP/s at transformer shapes.")
        @Option(help: "Only the shapes whose name starts with this (vicuna-7b, small).")
        var only: String?
        @OptionGroup var options: BenchOptions

        func run() {
            options.compute.apply()
            let small = LlamaConfig.presets["small"]!   // its 8 × 320-token training batch
            let allShapes = [("vicuna-7b attention projection", 2949, 4096, 4096), ("vicuna-7b ffn gate/up", 2949, 11008, 4096),
                             ("vicuna-7b ffn down", 2949, 4096, 11008), ("small attention projection", 2560, small.hidden, small.hidden),
                             ("small ffn gate/up", 2560, small.ffn, small.hidden), ("small ffn down", 2560, small.hidden, small.ffn)]
            let shapes = allShapes.filter { only.map($0.0.hasPrefix) ?? true }
            let results = shapes.map { gemmResult(name: $0.0, m: $0.1, n: $0.2, k: $0.3, reps: options.reps) }
            printResults(results, format: options.format, threads: BLAS.threads)
        }
    }

    struct Layer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forward of one Vicuna-7B-shaped decoder layer, against sgemm measured in the same run.")
        @Option(help: "Tokens in the sequence (5 crops of 576, 5 newlines, 64 text).")
        var tokens = 2949
        @OptionGroup var options: BenchOptions

        func run() {
            options.compute.apply()
            // One layer, and a 16-word head so that the layer is what is timed.
            let config = LlamaConfig(hidden: 4096, layers: 1, heads: 32, kvHeads: 32, ffn: 11008, vocab: 16)
            let model = LlamaModel(config: config, seed: 3)
            var rng = SeededGenerator(seed: 4)
            let batch = randomTokenBatch(count: 1, length: tokens, vocab: config.vocab, rng: &rng)
            let results = pairedResults(name: "vicuna-7b layer forward, \(tokens) tokens", reps: options.reps) {
                TextPass(model: model, batch: batch, keepsForBackward: false).forward()
            }
            printResults(results, format: options.format, threads: BLAS.threads)
        }
    }

    struct TrainStep: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train", abstract: "Training-step throughput (forward, backward, AdamW) in tokens/s and GFLOP/s.")
        @Option(help: "Decoder shape: \(LlamaConfig.presets.keys.sorted().joined(separator: ", ")).")
        var model = "small"
        @Option(help: "Sequences per batch.")
        var batchSize = 8
        @Option(help: "Tokens per sequence.")
        var sequenceLength = 320
        @OptionGroup var options: BenchOptions

        func run() throws {
            options.compute.apply()
            let config = try decoderShape(model)
            let trainer = Trainer(model: LlamaModel(config: config, seed: 5), recipe: TrainingRecipe(steps: 1000, learningRate: 3e-4, warmupSteps: 10))
            var rng = SeededGenerator(seed: 6)
            let batch = randomTokenBatch(count: batchSize, length: sequenceLength, vocab: config.vocab, rng: &rng)
            let analytic = config.trainingStepFLOPs(sequenceLengths: batch.inputs.map(\.count))
            var results = pairedResults(name: "\(model) training step, \(batchSize)x\(sequenceLength) tokens", reps: options.reps,
                                        perSecond: ["tokens_per_second": Double(batch.tokenCount)]) { trainer.train(on: batch) }
            results[1].extra["counted_over_analytic_flops"] = Double(results[0].flops) / Double(analytic)
            printResults(results, format: options.format, threads: BLAS.threads)
        }
    }
}

extension Bench {
    struct MultimodalStep: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "multimodal", abstract: "Multimodal training-step throughput: benchmark samples through encoder, projector and a variant's decoder.")
        @Option(help: "Scale: \(MultimodalRunConfig.scalePresets.joined(separator: ", ")) (the decoder's shape, vision geometry and training mix).")
        var preset = "small"
        @Option(help: "Variant in the text form.")
        var variant = "baseline"
        @Option(help: "Samples per batch (default: the scale preset's).")
        var batchSize: Int?
        @Option(help: "Vision grid side G (default: the scale preset's).")
        var grid: Int?
        @Option(help: "Crops per image, 1 to 5 (default: the scale preset's).")
        var crops: Int?
        @Option(help: "Questions about each image (default: the scale preset's).")
        var turns: Int?
        @OptionGroup var options: BenchOptions

        func run() throws {
            options.compute.apply()
            // The first batch of stage 2 of the scale's recipe.
            guard var run = MultimodalRunConfig.preset(preset, variant: variant) else { throw ValidationError("unknown scale preset '\(preset)'") }
            (run.grid, run.crops, run.turns, run.batchSize) = (grid ?? run.grid, crops ?? run.crops, turns ?? run.turns, batchSize ?? run.batchSize)
            let geometry = run.geometry
            let model = try reportingBadInput { try MultimodalModel(run: run) }
            let trainer = MultimodalTrainer(model: model, recipe: TrainingRecipe(steps: 1000, learningRate: 1e-3, warmupSteps: 10))
            let samples = run.batch(step: run.languageSteps + run.stage1Steps)
            let tokens = samples.map { Prompt(sample: $0, tokenizer: model.tokenizer, withAnswer: true).layout(geometry).count }.reduce(0, +)
            let results = pairedResults(name: "\(preset) multimodal step, \(run.batchSize) samples, \(variant)", reps: options.reps,
                                        perSecond: ["tokens_per_second": Double(tokens), "samples_per_second": Double(run.batchSize)]) {
                trainer.train(on: samples)
            }
            printResults(results, format: options.format, threads: BLAS.threads)
        }
    }
}
