import Benchmarks
import Decoder
import Kernels
import LayerGraph
import Training
import XCTest

final class MultimodalTests: XCTestCase {
    let geometry = VisionGeometry(grid: 4, patch: 4, crops: 2)

    func model(_ variant: String, seed: UInt64 = 1) throws -> MultimodalModel {
        let config = LlamaConfig(hidden: 16, layers: 3, heads: 4, kvHeads: 2, ffn: 24, vocab: Tokenizer().vocabularySize)
        let graph = try LayerGraph(spec: VariantSpec(variant), layers: config.layers, hidden: config.hidden, grid: geometry.grid)
        return MultimodalModel(encoder: VisionEncoder(geometry: geometry, features: 12, seed: 7),
                               language: GraphModel(decoder: LlamaModel(config: config, seed: seed), graph: graph, seed: seed + 1), seed: seed + 2)
    }

    /// Finite differences of one sample's loss through encoder features → projector → decoder,
    /// for the projector, the newline embedding, a text embedding row and a variant module
    /// (h = 1e-2, |Δ| ≤ 1e-3 + 2e-2·|numeric|).
    func testGradientsReachTheProjectorAndNewline() throws {
        let m = try model("proxyv-learned(n=2)@from:1")
        for p in m.parameters where p.shape.count == 2 { for i in 0..<p.value.count { p.value[i] *= 5 } }
        let sample = BenchmarkTask.named("count")!.sample(0, split: .train, side: geometry.imageSide)
        m.zeroGradients()
        let pass = MultimodalPass(model: m, sample: sample, withAnswer: true)
        pass.forward()
        pass.backward()
        func loss() -> Double { Double(MultimodalPass(model: m, sample: sample, withAnswer: true).forward()) }
        // The embedding row of the question's first token, which reaches the loss only through the inputs.
        let prompt = pass.prompts[0], d = m.language.config.hidden, row = Int(prompt.question[0]) * d
        let embedding = m.language.decoder.embedding
        let checked = m.projector.parameters.map { ($0, Array(Swift.stride(from: 0, to: $0.value.count, by: max(1, $0.value.count / 5)))) }
            + [(m.newline, Array(0..<d)), (m.language.modules.parameters[0], [0, 3, 7]), (embedding, Array(row..<row + d))]
        XCTAssertGreaterThan((row..<row + d).map { abs(embedding.grad[$0]) }.max()!, 0, "the question's embedding row gets a gradient")
        for (p, indices) in checked {
            for i in indices {
                let saved = p.value[i]
                p.value[i] = saved + 1e-2; let plus = loss()
                p.value[i] = saved - 1e-2; let minus = loss()
                p.value[i] = saved
                let numeric = (plus - minus) / 2e-2
                XCTAssertLessThanOrEqual(abs(Double(p.grad[i]) - numeric), 1e-3 + 2e-2 * abs(numeric), "\(p.name)[\(i)]")
            }
        }
        XCTAssertGreaterThan(m.newline.grad.array.map(abs).max()!, 0)
    }

    /// A fixed batch is learned: the loss falls, and stage 1 (decoder rate 0) leaves the decoder untouched.
    func testTrainingLowersTheLossAndStageOneFreezesTheDecoder() throws {
        let m = try model("skip-vattn-ffn@from:1")
        // The questions evaluation asks only, so that each answer is learned from its image.
        let samples = (0..<3).map { i -> Sample in
            var s = BenchmarkTask.named("attribute")!.sample(i, split: .train, side: geometry.imageSide)
            s.followUps = []
            return s
        }
        let decoderBefore = m.language.decoder.layers[0].query.value.array
        let stage1 = MultimodalTrainer(model: m, recipe: TrainingRecipe(steps: 5, learningRate: 1e-2, groupLearningRates: ["decoder": 0], warmupSteps: 1))
        for _ in 0..<5 { stage1.train(on: samples) }
        XCTAssertEqual(m.language.decoder.layers[0].query.value.array, decoderBefore, "decoder frozen in stage 1")
        let stage2 = MultimodalTrainer(model: m, recipe: TrainingRecipe(steps: 50, learningRate: 2e-2, warmupSteps: 3))
        let first = stage2.train(on: samples).loss
        var last = first
        for _ in 1..<50 { last = stage2.train(on: samples).loss }
        XCTAssertLessThan(last, 0.3 * first, "loss \(first) -> \(last)")
        // After overfitting, greedy decoding gives the training answers (at least two of three, as
        // another BLAS kernel's rounding may flip a close call), and the evaluation scores them.
        let evaluation = Evaluation(model: m, task: BenchmarkTask.named("attribute")!, split: .train, count: 3, maxTokens: 4)
        let literal = zip(evaluation.predictions, samples).filter { $1.references.contains($0) }.count
        XCTAssertGreaterThanOrEqual(literal, 2, "\(evaluation.predictions) against \(samples.map(\.references))")
        XCTAssertGreaterThanOrEqual(evaluation.headline, Double(literal) / 3, "an answer equal to a reference scores")
        XCTAssertEqual(Evaluation.scoreFine([evaluation]), 0, "attribute is not a fine-grained task")
    }

    /// A step's gradient is the whole batch's (the mean over samples of each answer's mean token
    /// loss) however the batch is dealt to the replicas, and the same bit for bit on one core or two.
    func testShardedGradientsAreTheBatchsAndDoNotDependOnCores() throws {
        let samples = (0..<3).map { BenchmarkTask.named("count")!.sample($0, split: .train, side: geometry.imageSide) }
        let reference = try model("skip-vattn-ffn@from:1")
        reference.zeroGradients()
        let passes = samples.map { MultimodalPass(model: reference, sample: $0, withAnswer: true) }
        for p in passes { p.forward() }
        for p in passes { p.backward(normalizer: Float(p.pass.countedTargets * samples.count)) }   // each sample's mean, averaged
        var gradients: [[[Float]]] = []
        for threads in [1, 2] {
            let saved = BLAS.threads
            BLAS.threads = threads
            defer { BLAS.threads = saved }
            let m = try model("skip-vattn-ffn@from:1")
            _ = MultimodalTrainer(model: m, recipe: TrainingRecipe(steps: 1, learningRate: 1e-2, warmupSteps: 1)).accumulateGradients(samples)
            gradients.append(m.parameters.map(\.grad.array))
        }
        XCTAssertEqual(gradients[0], gradients[1], "one core or two")
        for (p, g) in zip(reference.parameters, gradients[0]) {
            let scale = p.grad.array.map(abs).max()!
            for (a, b) in zip(p.grad.array, g) { XCTAssertLessThanOrEqual(abs(a - b), 1e-5 * scale, p.name) }
        }
    }

    /// Evaluation prefills packed chunks of prompts and decodes them in batches, dealt over the
    /// cores; its answers are the one-at-a-time path's: the same, except where the one-at-a-time
    /// logits' top two came within 1e-3 of each other (a close call that rounding may decide).
    func testPackedEvaluationAnswersAsOneAtATime() throws {
        let task = BenchmarkTask.named("chart-qa")!, count = Evaluation.chunk + 4, maxTokens = 5
        for variant in ["proxyv-learned(n=2)@from:1", "fastv(k=1,r=0.5)"] {
            let m = try model(variant)
            for p in m.parameters where p.shape.count == 2 { for i in 0..<p.value.count { p.value[i] *= 5 } }
            let evaluation = Evaluation(model: m, task: task, split: .val, count: count, maxTokens: maxTokens)
            var agreeing = 0
            for i in 0..<count {
                let pass = MultimodalPass(model: m, sample: task.sample(i, split: .val, side: geometry.imageSide), withAnswer: false)
                pass.forward()
                let decoder = GraphDecoder(prefill: pass.pass)
                var logits = decoder.prefillLogits[0], tokens: [Int32] = [], closest = Float.infinity
                while tokens.count < maxTokens {
                    let ranked = logits.indices.sorted { logits[$0] > logits[$1] }
                    closest = min(closest, logits[ranked[0]] - logits[ranked[1]])
                    tokens.append(Int32(ranked[0]))
                    if tokens.last == Tokenizer.eos { break }
                    logits = decoder.step(token: tokens.last!)
                }
                if evaluation.predictions[i] == m.tokenizer.decode(tokens) { agreeing += 1 } else {
                    XCTAssertLessThan(closest, 1e-3, "\(variant), sample \(i): \(evaluation.predictions[i]) against \(m.tokenizer.decode(tokens))")
                }
            }
            XCTAssertGreaterThanOrEqual(agreeing, count - 1, variant)
        }
    }

    /// A sample's loss weight scales its term of the gradient: weights (3, 0) give three times
    /// the gradient of the first sample's term alone (the batch still of two).
    func testLossWeightsScaleEachSamplesTerm() throws {
        let samples = (0..<2).map { BenchmarkTask.named("grounding")!.sample($0, split: .train, side: geometry.imageSide) }
        func gradients(_ weights: [Float]?, of batch: [Sample]) throws -> [[Float]] {
            let m = try model("baseline")
            _ = MultimodalTrainer(model: m, recipe: TrainingRecipe(steps: 1, learningRate: 1e-2, warmupSteps: 1)).accumulateGradients(batch, weights: weights)
            return m.parameters.map(\.grad.array)
        }
        let weighted = try gradients([3, 0], of: samples)
        // The first sample's term alone: its mean token loss over a batch of one, halved.
        let alone = try gradients(nil, of: [samples[0]])
        for (w, a) in zip(weighted, alone) {
            let scale = a.map(abs).max()!
            for (x, y) in zip(w, a) { XCTAssertEqual(x, 1.5 * y, accuracy: 1e-5 * scale) }
        }
        XCTAssertGreaterThan(alone.joined().map(abs).max()!, 0)
    }

    /// End to end on the `tiny` scale: a few hundred steps on the task built to be easy (the
    /// colour of a large rectangle, six answers) lower the loss and answer far above chance (1/6).
    /// Language pretraining reads captions through the baseline graph: it trains the same decoder
    /// whatever the variant, and nothing but the decoder.
    func testLanguagePretrainingIsTheSameForEveryVariant() throws {
        let samples = (0..<3).map { BenchmarkTask.named("doc-vqa")!.sample($0, split: .train, side: geometry.imageSide) }
        let (baseline, proxy) = (try model("baseline"), try model("proxyv-learned(n=2)@from:1"))
        let projector = proxy.projector.parameters.map(\.value.array)
        var run = MultimodalRunConfig.preset("tiny")!
        (run.languageSteps, run.stage1Steps, run.stage2Steps, run.languageLearningRate) = (3, 3, 3, 1e-2)
        var recipe = run.recipe(stage: 0)
        recipe.adam.weightDecay = 0.1   // decay too spares what the stage does not train
        for m in [baseline, proxy] {
            let trainer = MultimodalTrainer(model: m, recipe: recipe)
            for _ in 0..<3 { trainer.train(on: samples, seeingImages: false) }
        }
        XCTAssertEqual(proxy.language.decoder.parameters.map(\.value.array), baseline.language.decoder.parameters.map(\.value.array))
        XCTAssertNotEqual(proxy.language.decoder.parameters.map(\.value.array), try model("baseline").language.decoder.parameters.map(\.value.array))
        XCTAssertEqual(proxy.projector.parameters.map(\.value.array), projector)
        // A run's steps: language pretraining, then stages 1 and 2.
        (run.languageSteps, run.stage1Steps, run.stage2Steps) = (2, 3, 4)
        XCTAssertEqual((0..<run.totalSteps).map(run.stage), [0, 0, 1, 1, 1, 2, 2, 2, 2])
    }

    /// FT trains its baseline's stages first: with no stage-2 step it ends with its baseline's
    /// weights and the variant's modules as initialised; its stage 2 trains the modules.
    func testFinetuningStartsWhereItsBaselineEndsStageOne() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ft-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var base = MultimodalRunConfig.preset("tiny", seed: 3)!
        (base.languageSteps, base.stage1Steps, base.stage2Steps, base.batchSize) = (1, 2, 0, 2)
        var ft = base
        (ft.variant, ft.variantStage) = ("skip-vattn-ffn@from:2", 2)
        let baseline = try MultimodalRun(config: base, directory: folder + "/base")
        try baseline.train()
        func modules(_ run: MultimodalRun) -> [[Float]] { run.model.parameters.filter { $0.group == "variant" }.map(\.value.array) }
        let start = try MultimodalRun(config: ft, directory: folder + "/ft0"), fresh = modules(start)
        try start.train()
        XCTAssertFalse(fresh.isEmpty)
        XCTAssertEqual(modules(start), fresh, "stages 0 and 1 train the baseline graph, which has no variant modules")
        let tuned = Dictionary(uniqueKeysWithValues: start.model.parameters.map { ($0.name, $0.value.array) })
        for p in baseline.model.parameters {
            let difference = zip(p.value.array, tuned[p.name]!).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(difference, 1e-6, "\(p.name) after stage 1")
        }
        ft.stage2Steps = 1
        let finetuned = try MultimodalRun(config: ft, directory: folder + "/ft1")
        try finetuned.train()
        XCTAssertNotEqual(modules(finetuned), fresh, "stage 2 trains the variant's modules")
    }

    /// A run whose loss becomes NaN or infinite stops at that step and says so; the checkpoint
    /// written before it is kept unchanged.
    func testADivergedRunStopsAndKeepsItsLastCheckpoint() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diverge-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var config = MultimodalRunConfig.preset("tiny", seed: 2)!
        (config.stage1Steps, config.stage2Steps, config.batchSize, config.checkpointEvery) = (1, 30, 2, 1)
        config.stage2LearningRate = 1e30
        let run = try MultimodalRun(config: config, directory: folder)
        var diverged = -1
        XCTAssertThrowsError(try run.train()) { error in
            XCTAssertTrue("\(error)".contains("training diverged at step"), "\(error)")
            diverged = Int("\(error)".components(separatedBy: "diverged at step ").last!.prefix { $0.isNumber }) ?? -1
        }
        // The checkpoint is the one written after the last finite step, its weights finite.
        let checkpoint = try SafetensorsFile(path: folder + "/checkpoint.safetensors")
        XCTAssertEqual(checkpoint.metadata["squeeze.step"], String(diverged))
        for name in checkpoint.entries.keys { XCTAssertTrue(try checkpoint.tensor(name).array.allSatisfy(\.isFinite), name) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.modelPath))
    }

    func testTinyLearnsTheEasyTaskAboveChance() throws {
        var run = MultimodalRunConfig.preset("tiny", seed: 5)!
        (run.crops, run.stage2Steps) = (1, 200)
        let m = try MultimodalModel(run: run)
        let task = BenchmarkTask.named("colour")!
        let trainer = MultimodalTrainer(model: m, recipe: TrainingRecipe(steps: run.stage2Steps, learningRate: run.stage2LearningRate, warmupSteps: 10))
        let losses = (0..<run.stage2Steps).map { step in
            trainer.train(on: (0..<run.batchSize).map { task.sample(step * run.batchSize + $0, split: .train, side: run.geometry.imageSide) }).loss
        }
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        XCTAssertLessThan(last, 0.5 * first, "loss \(first) -> \(last)")
        let evaluation = Evaluation(model: m, task: task, split: .val, count: 30, maxTokens: 8)
        XCTAssertGreaterThan(evaluation.headline, 0.5, "accuracy \(evaluation.headline) against chance 1/6: \(evaluation.predictions)")
    }
}
