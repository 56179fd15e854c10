import Benchmarks
import Decoder
import Foundation
import Kernels
import LayerGraph

/// A multimodal model: the frozen vision-encoder stand-in, the trainable projector and newline
/// embedding, and a decoder whose layers follow a layer graph.
public final class MultimodalModel {
    public let encoder: VisionEncoder
    public let projector: Projector
    /// The learned token after each crop (`model.image_newline`).
    public let newline: Parameter
    public let language: GraphModel
    public let tokenizer = Tokenizer()

    public convenience init(encoder: VisionEncoder, language: GraphModel, seed: UInt64) {
        var rng = SeededGenerator(seed: seed &+ 1)
        let d = language.config.hidden
        self.init(encoder: encoder, projector: Projector(features: encoder.features, hidden: d, seed: seed),
                  newline: Parameter(name: "model.image_newline", value: Tensor(shape: [d], std: 0.02, rng: &rng), group: "projector"),
                  language: language)
    }

    init(encoder: VisionEncoder, projector: Projector, newline: Parameter, language: GraphModel) {
        self.encoder = encoder
        self.projector = projector
        self.newline = newline
        self.language = language
    }

    /// The same trained weights under another variant, applied only at inference (the paper's
    /// TF setting). A variant that adds modules (light MLPs, ProxyV's updates) has nothing
    /// trained to run them and is refused: it needs finetuning.
    public func trainingFree(_ spec: VariantSpec) throws -> MultimodalModel {
        let c = language.config
        let graph = try LayerGraph(spec: spec, layers: c.layers, hidden: c.hidden, grid: geometry.grid, features: encoder.features)
        let modules = VariantModules(graph: graph, hidden: c.hidden, seed: 0)
        guard modules.parameters.isEmpty else {
            throw VariantCompileError(spec: spec.text, problem: "adds modules that were never trained; training-free evaluation needs a variant without new weights")
        }
        return MultimodalModel(encoder: encoder, projector: projector, newline: newline,
                               language: GraphModel(decoder: language.decoder, graph: graph, modules: modules))
    }

    /// The decoder under the baseline graph: what reads text-only prompts (language pretraining
    /// is the same for every variant, as every variant of the paper starts from the same LLM).
    public private(set) lazy var textOnly: GraphModel = {
        let c = language.config
        let graph = try! LayerGraph(spec: VariantSpec("baseline"), layers: c.layers, hidden: c.hidden, grid: geometry.grid)
        return GraphModel(decoder: language.decoder, graph: graph, modules: VariantModules(graph: graph, hidden: c.hidden, seed: 0))
    }()

    public var geometry: VisionGeometry { encoder.geometry }
    public var parameters: [Parameter] { projector.parameters + [newline] + language.parameters }
    public func zeroGradients() { for p in parameters { p.grad.zero() } }

    /// A model that shares these weights but has gradients of its own, so that passes of a batch
    /// can run backwards at once; their gradients are summed afterwards.
    public func replica() -> MultimodalModel {
        let c = language.config
        let twin = MultimodalModel(encoder: encoder, projector: Projector(features: encoder.features, hidden: c.hidden, seed: 0),
                                   newline: Parameter(name: newline.name, value: Tensor(shape: newline.shape)),
                                   language: GraphModel(decoder: language.decoder.replica(), graph: language.graph,
                                                        modules: VariantModules(graph: language.graph, hidden: c.hidden, seed: 0)))
        for (original, copy) in zip(parameters, twin.parameters) {
            precondition(original.name == copy.name, "a replica lists its parameters in the model's order")
            copy.share(original)
        }
        return twin
    }
}

/// Samples through the model in one packed pass: each prompt's token layout, the decoder inputs
/// assembled along it (text embeddings, projected vision features, newline embeddings), and the
/// executor's pass over all of them.
public final class MultimodalPass {
    public let model: MultimodalModel
    public let prompts: [Prompt]
    public let pass: GraphPass
    private let projectorTape: Projector.Tape?
    private let textIDs: [[LayoutToken: Int32]]

    /// With `withAnswer` the answers are part of the input and carry the loss (training);
    /// without them the pass is the prefill of a generation. Without `seesImage` each image's
    /// caption stands in its place and the decoder reads it under the baseline graph.
    public init(model: MultimodalModel, samples: [Sample], withAnswer: Bool, seesImage: Bool = true) {
        self.model = model
        prompts = samples.map { Prompt(sample: $0, tokenizer: model.tokenizer, withAnswer: withAnswer, seesImage: seesImage) }
        let d = model.language.config.hidden, perCrop = model.geometry.grid * model.geometry.grid
        let imageTokens = seesImage ? model.geometry.crops * perCrop : 0
        // Every image's features through the projector at once.
        let encoded = seesImage ? samples.map { model.encoder.encode($0.image) } : []
        let features = Tensor(shape: [samples.count * imageTokens, model.encoder.features])
        for (i, e) in encoded.enumerated() { (features.data + i * e.features.count).update(from: e.features.data, count: e.features.count) }
        let (vision, tape) = seesImage ? model.projector.forward(features) : (Tensor(shape: [0, d]), nil)
        projectorTape = tape
        let embedding = model.language.decoder.embedding.value
        var sequences: [SequenceInput] = [], allIDs: [[LayoutToken: Int32]] = []
        for (i, prompt) in prompts.enumerated() {
            let layout = prompt.layout(model.geometry)
            var ids: [LayoutToken: Int32] = [:], targets: [LayoutToken: Int32] = [:], salient: [LayoutToken: Float] = [:]
            let inputs = Tensor(shape: [layout.count, d])
            for (row, token) in layout.tokens.enumerated() {
                let destination = inputs.data + row * d
                switch token.kind {
                case .system, .question, .answer:
                    let text = token.kind == .system ? prompt.system : token.kind == .question ? prompt.question : prompt.answer
                    ids[token] = text[token.index]
                    destination.update(from: embedding.data + Int(text[token.index]) * d, count: d)
                case .vision:
                    destination.update(from: vision.data + (i * imageTokens + token.crop * perCrop + token.index) * d, count: d)
                    salient[token] = encoded[i].saliency[token.crop * perCrop + token.index]
                case .newline:
                    destination.update(from: model.newline.value.data, count: d)
                case .proxy:
                    preconditionFailure("proxies are made inside the decoder")
                }
                let target = token.kind == .question ? prompt.questionTargets[token.index] : token.kind == .answer ? prompt.answerTargets[token.index] : -1
                if target >= 0 { targets[token] = target }
            }
            sequences.append(SequenceInput(layout: layout, inputs: inputs, targets: targets, saliency: salient, features: seesImage ? encoded[i].features : nil))
            allIDs.append(ids)
        }
        textIDs = allIDs
        pass = GraphPass(model: seesImage ? model.language : model.textOnly, sequences: sequences, keepsForBackward: withAnswer)
    }

    /// One sample's pass.
    public convenience init(model: MultimodalModel, sample: Sample, withAnswer: Bool, seesImage: Bool = true) {
        self.init(model: model, samples: [sample], withAnswer: withAnswer, seesImage: seesImage)
    }

    /// Token layouts of the prompts, in batch order.
    public var layouts: [TokenLayout] { pass.sequences.map(\.layout) }

    /// Each sample's mean loss over its answer tokens, after `forward()`.
    public var sampleLosses: [Float] { zip(pass.lossSums, pass.targetCounts).map { Float($0 / Double(max(1, $1))) } }

    @discardableResult
    public func forward() -> Float { pass.forward() }

    /// Accumulates gradients into the decoder, the variant's modules, the newline embedding and
    /// the projector: of lossSum / normalizer (default: the mean over the batch's targets).
    public func backward(normalizer: Float? = nil) {
        let normalizer = normalizer ?? Float(pass.countedTargets)
        backward(lossScales: Array(repeating: normalizer > 0 ? 1 / normalizer : 0, count: prompts.count))
    }

    /// Accumulates the gradient of Σᵢ lossScales[i] · (sample i's summed loss).
    public func backward(lossScales: [Float]) {
        pass.backward(lossScales: lossScales)
        let d = model.language.config.hidden, perCrop = model.geometry.grid * model.geometry.grid
        let imageTokens = projectorTape == nil ? 0 : model.geometry.crops * perCrop
        let dInputs = pass.inputGradient, dVision = Tensor(shape: [prompts.count * imageTokens, d])
        let dEmbedding = model.language.decoder.embedding.grad
        for (i, layout) in layouts.enumerated() {
            for (row, token) in layout.tokens.enumerated() {
                let source = dInputs.data + (pass.inputOffsets[i] + row) * d
                let destination: FloatPtr
                switch token.kind {
                case .system, .question, .answer: destination = dEmbedding.data + Int(textIDs[i][token]!) * d
                case .vision: destination = dVision.data + (i * imageTokens + token.crop * perCrop + token.index) * d
                case .newline: destination = model.newline.grad.data
                case .proxy: continue
                }
                for j in 0..<d { destination[j] += source[j] }
            }
        }
        if let projectorTape { _ = model.projector.backward(dVision, tape: projectorTape) }
    }

    /// Greedy answers after this (answer-less) prefill, up to `maxTokens` tokens or <eos> each.
    public func generate(maxTokens: Int) -> [String] {
        _ = pass.forward()
        return answers(maxTokens: maxTokens)
    }

    /// The greedy answers, once `forward()` has run the prefill.
    public func answers(maxTokens: Int) -> [String] {
        GraphDecoder(prefill: pass).generate(count: maxTokens, stop: Tokenizer.eos).map(model.tokenizer.decode)
    }
}

/// Trains a multimodal model on batches of benchmark samples. Stage 1 of the paper's recipe is
/// a recipe whose "decoder" group has learning rate 0 (projector, newline and the variant's
/// modules train); stage 2 trains everything.
///
/// A batch is dealt into a fixed number of shards (sample i to shard i mod `shards`), each one
/// packed pass of the executor against a replica of the model sharing its weights; shards run on
/// as many cores as there are (up to `shards`), with single-threaded BLAS. Shard gradients are
/// summed in shard order, so a step's result does not depend on the number of cores.
public final class MultimodalTrainer {
    public static let shards = 2
    public let model: MultimodalModel
    public let optimization: Optimization
    private let replicas: [MultimodalModel]
    public var step: Int { optimization.step }

    public init(model: MultimodalModel, recipe: TrainingRecipe) {
        self.model = model
        optimization = Optimization(parameters: model.parameters, recipe: recipe)
        replicas = [model] + (1..<Self.shards).map { _ in model.replica() }
    }

    /// One step on `samples`; returns their loss before the update, unweighted (see `accumulateGradients`).
    @discardableResult
    public func train(on samples: [Sample], weights: [Float]? = nil, seeingImages: Bool = true) -> StepReport {
        let (losses, tokens) = accumulateGradients(samples, weights: weights, seeingImages: seeingImages)
        let index = step, (norm, rate) = optimization.update()
        return StepReport(step: index, loss: losses.reduce(0, +) / Float(losses.count), gradientNorm: norm, learningRate: rate,
                          tokens: tokens, sampleLosses: losses)
    }

    /// The gradient of the batch's loss into the model's gradients; returns each sample's loss
    /// and the tokens processed. The loss is the mean over samples of each answer's mean token loss: every
    /// sample weighs the same, so that a page's transcription (fifty tokens) does not drown the
    /// one-token answers of counting, POPE or multiple choice, as a mean over tokens would.
    /// `weights` scale the samples' terms (1 each by default; `MultimodalRunConfig.lossWeights`).
    public func accumulateGradients(_ samples: [Sample], weights: [Float]? = nil, seeingImages: Bool = true) -> (losses: [Float], tokens: Int) {
        let shards = (0..<replicas.count).map { s in Array(stride(from: s, to: samples.count, by: replicas.count)) }
        var losses = [Float](repeating: 0, count: samples.count), tokens = [Int](repeating: 0, count: replicas.count)
        losses.withUnsafeMutableBufferPointer { slots in   // shards fill disjoint slots
            Parallel.forEach(replicas.count) { s, _ in
                replicas[s].zeroGradients()
                guard !shards[s].isEmpty else { return }
                let pass = MultimodalPass(model: replicas[s], samples: shards[s].map { samples[$0] }, withAnswer: true, seesImage: seeingImages)
                pass.forward()
                pass.backward(lossScales: shards[s].indices.map { j in
                    (weights?[shards[s][j]] ?? 1) / Float(max(1, pass.pass.targetCounts[j]) * samples.count)
                })
                for (j, loss) in pass.sampleLosses.enumerated() { slots[shards[s][j]] = loss }
                tokens[s] = pass.layouts.reduce(0) { $0 + $1.count }
            }
        }
        addReplicaGradients(into: model.parameters, from: replicas.dropFirst().map(\.parameters))
        return (losses, tokens.reduce(0, +))
    }
}

/// A model's greedy answers on samples of a task, kept per sample, and the task's scores.
public struct Evaluation: Sendable {
    public let task: String
    public let fineGrained: Bool
    public let predictions: [String]
    public let references: [[String]]
    public let scores: [String: Double]
    /// The task's main score (Score_fine averages these over the fine-grained tasks).
    public let headline: Double
    /// The headline's standard error over these samples (`BenchmarkTask.standardError`).
    public let standardError: Double
    /// Each sample's score under the task's per-sample metric.
    public let perSample: (metric: String, values: [Double])
    /// The headline score of answering without looking (`TrainingAnswers.blindAnswers`), on the same samples.
    public let blind: Double
    /// Measured wall-clock seconds of each sample's prefill and of its whole greedy answer.
    public let prefillSeconds: [Double], answerSeconds: [Double]

    /// Prompts prefilled and answered together, per core.
    public static let chunk = 8

    /// `maxTokens` defaults to the task's answer length limit (`TrainingAnswers.tokenLimit`).
    /// The samples are dealt over the cores in chunks of `chunk` (each core takes the next chunk);
    /// each chunk's prompts are prefilled in one packed pass and answered by batched decoding,
    /// and every sample is given its chunk's mean time per sample.
    public init(model: MultimodalModel, task: BenchmarkTask, split: Split, count: Int, maxTokens: Int? = nil) {
        let samples = Parallel.map(count) { task.sample($0, split: split, side: model.geometry.imageSide) }
        let training = TrainingAnswers(task, side: model.geometry.imageSide), maxTokens = maxTokens ?? training.tokenLimit
        let chunks = stride(from: 0, to: count, by: Self.chunk).map { $0..<min($0 + Self.chunk, count) }
        var predictions = [String](repeating: "", count: count), prefill = [Double](repeating: 0, count: count)
        var answer = [Double](repeating: 0, count: count)
        predictions.withUnsafeMutableBufferPointer { predicted in   // chunks fill disjoint slots
            prefill.withUnsafeMutableBufferPointer { prefilled in
                answer.withUnsafeMutableBufferPointer { answered in
                    Parallel.forEach(chunks.count) { c, _ in
                        let range = chunks[c], start = DispatchTime.now().uptimeNanoseconds
                        let pass = MultimodalPass(model: model, samples: Array(samples[range]), withAnswer: false)
                        _ = pass.forward()
                        let prefillEnd = DispatchTime.now().uptimeNanoseconds
                        let answers = pass.answers(maxTokens: maxTokens)
                        let end = DispatchTime.now().uptimeNanoseconds, n = Double(range.count)
                        for (i, a) in zip(range, answers) {
                            predicted[i] = a
                            prefilled[i] = Double(prefillEnd - start) / 1e9 / n
                            answered[i] = Double(end - start) / 1e9 / n
                        }
                    }
                }
            }
        }
        self.predictions = predictions
        (prefillSeconds, answerSeconds) = (prefill, answer)
        references = samples.map(\.references)
        self.task = task.name
        fineGrained = task.fineGrained
        scores = task.score(predictions: predictions, samples: samples)
        perSample = task.perSample(predictions: predictions, samples: samples)
        headline = task.headline(scores)
        standardError = task.standardError(predictions: predictions, samples: samples)
        blind = training.blindScore(samples)
    }

    /// Each task in turn on `model`, the same samples for every model; `done` sees each
    /// evaluation as it ends.
    public static func run(model: MultimodalModel, tasks: [BenchmarkTask], split: Split, count: Int,
                           done: (Evaluation) -> Void = { _ in }) -> [Evaluation] {
        tasks.map { task in
            let evaluation = Evaluation(model: model, task: task, split: split, count: count)
            done(evaluation)
            return evaluation
        }
    }

    /// The mean headline score over the fine-grained tasks among `evaluations`.
    public static func scoreFine(_ evaluations: [Evaluation]) -> Double {
        let fine = evaluations.filter(\.fineGrained)
        return fine.isEmpty ? 0 : fine.reduce(0) { $0 + $1.headline } / Double(fine.count)
    }

    /// The standard error of `scoreFine`.
    public static func scoreFineStandardError(_ evaluations: [Evaluation]) -> Double {
        meanStandardError(evaluations.filter(\.fineGrained).map(\.standardError))
    }

    /// The standard error of a mean of scores with these errors: the tasks' samples are drawn
    /// apart, so their errors add in quadrature.
    public static func meanStandardError(_ errors: [Double]) -> Double {
        errors.isEmpty ? 0 : errors.reduce(0) { $0 + $1 * $1 }.squareRoot() / Double(errors.count)
    }
}
