import Benchmarks
import Decoder
import Foundation
import Kernels
import LayerGraph
import Training

/// Runs one planned run in this process: trains (or resumes, or reuses a trained base),
/// evaluates, counts, and writes the run's file into the store.
public struct RunExecutor {
    public let store: RunStore

    public init(store: RunStore) { self.store = store }

    public func execute(_ run: PlannedRun, log: (String) -> Void) throws {
        let spec = run.spec, started = Date()
        store.removeStalePartials(of: run.id)
        var timing: [String: Double] = [:]
        let trainStart = Date()
        let trained: MultimodalRun
        switch spec.mode {
        case .tf:
            guard let base = store.trainedModel(spec.trainingID) else {
                throw RunError(file: store.workDirectory(of: spec.trainingID), problem: "the baseline \(spec.base!.id) this TF run evaluates is not trained")
            }
            trained = try MultimodalRun.load(directory: base)
        case .full, .ft:
            trained = try train(run, log: log)
        }
        timing["train_seconds"] = Date().timeIntervalSince(trainStart)
        let model = spec.mode == .tf ? try trained.model.trainingFree(VariantSpec(spec.variant)) : trained.model

        let evalStart = Date()
        var benchmarks: [BenchmarkRecord] = [], answer: [Double] = []
        for evaluation in Evaluation.run(model: model, tasks: spec.benchmarks.map { BenchmarkTask.named($0)! }, split: spec.split,
                                         count: spec.samples, done: { log(String(format: "%@ %@ %.3f", run.id, $0.task, $0.headline)) }) {
            benchmarks.append(BenchmarkRecord(evaluation))
            answer += evaluation.answerSeconds
        }
        timing["eval_seconds"] = Date().timeIntervalSince(evalStart)
        let prefill = benchmarks.flatMap(\.prefillSeconds)
        timing["prefill_seconds_mean"] = prefill.reduce(0, +) / Double(max(1, prefill.count))
        timing["answer_seconds_mean"] = answer.reduce(0, +) / Double(max(1, answer.count))

        // FLOPs and prefill time of a typical prompt: the first evaluated sample's.
        let sample = BenchmarkTask.named(spec.benchmarks[0])!.sample(0, split: spec.split, side: model.geometry.imageSide)
        timing.merge(try RunExecutor.prefillTiming(model, on: sample), uniquingKeysWith: { $1 })
        let layout = Prompt(sample: sample, tokenizer: model.tokenizer, withAnswer: false).layout(model.geometry)
        let accounting = try AccountingRecord(config: model.language.config, spec: VariantSpec(spec.variant), layout: layout, features: model.encoder.features)

        var record = RunRecord(id: run.id, config: spec.json, model: spec.preset, variant: spec.variant, mode: spec.mode.rawValue,
                               seed: spec.seed, baselineID: run.baselineID, accounting: accounting)
        (record.started, record.finished, record.benchmarks, record.timing) = (started, Date(), benchmarks, timing)
        record.curves = spec.mode == .tf ? [:] : trainingCurves(directory: trained.directory)
        try store.write(record)
        log(String(format: "%@ complete: Score_fine %.3f, %.3g FLOPs (%.1f %% fewer than baseline)", run.id, record.scoreFine,
                   accounting.flops, accounting.reducedPercent))
    }

    /// Repetitions of `prefillTiming`.
    static let prefillPairs = 21

    /// The prefill of one prompt timed in turn with the same weights under the baseline graph,
    /// A B A B … after a warm-up of each (as `squeeze time` and `bench` measure): the medians
    /// and the median, least and greatest of the pairs' time ratios, variant over baseline.
    static func prefillTiming(_ model: MultimodalModel, on sample: Sample) throws -> [String: Double] {
        let baseline = try model.trainingFree(VariantSpec("baseline"))
        func prefill(_ m: MultimodalModel) { _ = MultimodalPass(model: m, samples: [sample], withAnswer: false).forward() }
        // The work is the baseline, the yardstick the variant: the ratios are variant / baseline.
        let paired = PairedTiming(reps: prefillPairs, work: { prefill(baseline) }, yardstick: { seconds { prefill(model) } })
        return ["prefill_seconds_median": paired.yardstick.median, "baseline_prefill_seconds_median": paired.work.median,
                "prefill_time_ratio_median": paired.ratios.median, "prefill_time_ratio_min": paired.ratios.min,
                "prefill_time_ratio_max": paired.ratios.max]
    }

    /// Trains in the work directory of the run's training, resuming from its checkpoint; a finished
    /// model of the same training (here or in a model store) is reused. Runs of one training wait
    /// for each other, so it is trained once.
    private func train(_ run: PlannedRun, log: (String) -> Void) throws -> MultimodalRun {
        let directory = store.workDirectory(of: run.spec.trainingID)
        let lock = RunLock(path: directory + ".training.lock", waiting: true)
        defer { withExtendedLifetime(lock) {} }
        let config = run.spec.trainingConfig(checkpointEvery: run.checkpointEvery)
        if let finished = store.trainedModel(run.spec.trainingID), var saved = try? MultimodalRun.configuration(directory: finished) {
            saved.checkpointEvery = config.checkpointEvery   // how often it checkpointed does not change the model
            if saved == config { return try MultimodalRun.load(directory: finished) }
        }
        let training = try MultimodalRun(config: config, directory: directory)
        if let step = training.checkpointStep { log("\(run.id) resumes its training from the checkpoint at step \(step) of \(config.totalSteps)") }
        var lastLogged = Date.distantPast
        try training.train { r in
            if Date().timeIntervalSince(lastLogged) > 10 || r.step + 1 == config.totalSteps {
                log(String(format: "%@ step %d/%d loss %.4f", run.id, r.step + 1, config.totalSteps, r.loss))
                lastLogged = Date()
            }
        }
        return training
    }

    /// The training log's columns (step, stage, loss, grad_norm, learning_rate, each task's loss;
    /// NaN where a step had none of the task) as arrays.
    private func trainingCurves(directory: String) -> [String: [Double]] {
        guard let text = try? String(contentsOfFile: (directory as NSString).appendingPathComponent("train_log.csv"), encoding: .utf8) else { return [:] }
        let lines = text.split(separator: "\n")
        guard let header = lines.first?.split(separator: ",").map(String.init) else { return [:] }
        var columns = Dictionary(uniqueKeysWithValues: header.map { ($0, [Double]()) })
        for line in lines.dropFirst() {
            for (name, value) in zip(header, line.split(separator: ",", omittingEmptySubsequences: false)) { columns[name]!.append(Double(value) ?? .nan) }
        }
        return columns
    }
}
