import ArgumentParser
import Benchmarks
import Foundation
import LayerGraph
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained multimodal run on the benchmarks: greedy answers, per-benchmark scores, Score_fine.")

    @Argument(help: "A run directory written by 'squeeze train' (multimodal).")
    var directory: String
    @Option(help: "Benchmarks: 'all' (the suite) or a comma-separated list of \(BenchmarkTask.all.map(\.name).joined(separator: ", ")), 'all' and the probes \(BenchmarkTask.probes.map { "'\($0.name)'" }.joined(separator: " and ")).")
    var benchmarks = "all"
    @Option(help: "Samples per benchmark.")
    var samples = 50

    func validate() throws { try check(samples, in: 1...100_000, "--samples") }
    @Option(help: "train, val or test.")
    var split: Split = .val
    @Option(help: "Apply this variant at inference instead of the run's own (training-free, 'TF').")
    var variant: String?
    @Option(help: "A baseline run evaluated on the same samples, for Score_fine Rel.")
    var baseline: String?
    @Option(help: "Output: text or json.")
    var format: OutputFormat = .text
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        let trained = try reportingBadInput { try MultimodalRun.load(directory: directory) }
        let model = try variant.map { v in try reportingBadInput { try trained.model.trainingFree(VariantSpec(v)) } } ?? trained.model
        let variantName = variant.map { "\($0) (training-free on a \(trained.config.variant) run)" } ?? trained.config.variant
        let reference = try baseline.map { b in try reportingBadInput { try MultimodalRun.load(directory: b) } }
        let tasks = try benchmarks.split(separator: ",").flatMap { $0 == "all" ? BenchmarkTask.all : [try benchmarkTask(String($0))] }
        let progress = Progress(total: tasks.count * (reference == nil ? 1 : 2), label: "eval")
        var done = 0
        func evaluate(_ m: MultimodalModel) -> [Evaluation] {
            Evaluation.run(model: m, tasks: tasks, split: split, count: samples) { e in
                done += 1
                progress.update(done: done, status: e.task)
            }
        }
        let evaluations = evaluate(model)
        let scoreFine = Evaluation.scoreFine(evaluations), scoreFineError = Evaluation.scoreFineStandardError(evaluations)
        let baselineFine = reference.map { Evaluation.scoreFine(evaluate($0.model)) }
        let relative = baselineFine.flatMap { $0 > 0 ? scoreFine / $0 : nil }
        switch format {
        case .json:
            var object: [String: Any] = ["run": directory, "variant": variantName, "split": split.rawValue, "samples": samples,
                                         "score_fine": scoreFine, "score_fine_standard_error": scoreFineError,
                                         "benchmarks": Dictionary(uniqueKeysWithValues: evaluations.map { e in
                                             (e.task, ["headline": e.headline, "standard_error": e.standardError, "blind": e.blind, "scores": e.scores, "predictions": e.predictions] as [String: Any])
                                         })]
            if let baselineFine { object["baseline_score_fine"] = baselineFine }
            if let relative { object["score_fine_rel"] = relative }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        case .text:
            print("\(directory): \(trained.config.preset), variant \(variantName), \(samples) \(split.rawValue) samples per benchmark")
            print("benchmark    score     ±  blind   all metrics (±: standard error over the samples; blind: the most frequent training answer to the question)")
            for e in evaluations {
                let details = e.scores.sorted { $0.key < $1.key }.map { String(format: "%@ %.3f", $0.key, $0.value) }.joined(separator: ", ")
                print(e.task.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%6.3f %5.3f %6.3f   ", e.headline, e.standardError, e.blind) + details)
            }
            print(String(format: "Score_fine %.3f ± %.3f (mean over %d fine-grained benchmarks)", scoreFine, scoreFineError, evaluations.filter(\.fineGrained).count)
                  + (baselineFine.map { String(format: "; baseline %.3f", $0) } ?? "")
                  + (relative.map { String(format: "; Score_fine Rel %.1f %%", 100 * $0) } ?? (baselineFine != nil ? "; Rel undefined (baseline 0)" : "")))
        }
    }
}
