import ArgumentParser
import Benchmarks
import Foundation
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained multimodal run on the benchmarks: greedy answers, per-benchmark scores, Score_fine.")

    @Argument(help: "A run directory written by 'squeeze train' (multimodal).")
    var directory: String
    @Option(help: "Benchmarks: 'all' or a comma-separated list of \(BenchmarkTask.all.map(\.name).joined(separator: ", ")).")
    var benchmarks = "all"
    @Option(help: "Samples per benchmark.")
    var samples = 50
    @Option(help: "train, val or test.")
    var split: Split = .val
    @Option(help: "Output: text or json.")
    var format: OutputFormat = .text
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        let trained = try reportingBadInput { try MultimodalRun.load(directory: directory) }
        let tasks = try benchmarks == "all" ? BenchmarkTask.all : benchmarks.split(separator: ",").map { try benchmarkTask(String($0)) }
        let progress = Progress(total: tasks.count, label: "eval")
        var evaluations: [Evaluation] = []
        for (i, task) in tasks.enumerated() {
            evaluations.append(Evaluation(model: trained.model, task: task, split: split, count: samples))
            progress.update(done: i + 1, status: task.name)
        }
        let scoreFine = Evaluation.scoreFine(evaluations)
        switch format {
        case .json:
            let object: [String: Any] = ["run": directory, "variant": trained.config.variant, "split": split.rawValue, "samples": samples,
                                         "score_fine": scoreFine,
                                         "benchmarks": Dictionary(uniqueKeysWithValues: evaluations.map { e in
                                             (e.task, ["headline": e.headline, "scores": e.scores, "predictions": e.predictions] as [String: Any])
                                         })]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
        case .text:
            print("\(directory): \(trained.config.preset), variant \(trained.config.variant), \(samples) \(split.rawValue) samples per benchmark")
            for e in evaluations {
                let details = e.scores.sorted { $0.key < $1.key }.map { String(format: "%@ %.3f", $0.key, $0.value) }.joined(separator: ", ")
                print(e.task.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%6.3f   ", e.headline) + details)
            }
            print(String(format: "Score_fine %.3f (mean over %d fine-grained benchmarks)", scoreFine, evaluations.filter(\.fineGrained).count))
        }
    }
}
