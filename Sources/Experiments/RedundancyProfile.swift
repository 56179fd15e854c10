import Accounting
import Benchmarks
import Foundation
import Kernels
import LayerGraph
import Training

/// The redundancy profile of a trained baseline: training-free `mask-vv` and `skip-vattn` from
/// every layer, each evaluated on the same samples as the model itself, with Score_fine Rel and
/// its paired interval — where the vision tokens' computation can go, layer by layer, without
/// the hand search of the paper's Figure 2.
public struct RedundancyProfile {
    public struct Point {
        public let family: String, start: Int
        public let scoreFine: Double
        public let difference: Interval, relative: Interval
        /// Prefill FLOPs reduced (%) at the run's own prompt.
        public let flopsReduced: Double
    }

    /// The variants profiled: vision→vision attention masked, and vision queries skipped.
    public static let families = ["mask-vv", "skip-vattn"]
    /// The paper's model, at whose shape (5 crops of 24×24, 50 text tokens) the savings are also counted.
    public static let paperModel = "vicuna-7b"

    public let layers: Int, samples: Int
    public let baselineScoreFine: Double
    public let points: [Point]
    let config: LlamaConfig

    /// Evaluates `run` (a baseline) and each variant on the fine-grained benchmarks' first
    /// `samples` of `split`; `done` sees each variant as it ends.
    public init(run: MultimodalRun, samples: Int, split: Split, done: (String) -> Void = { _ in }) throws {
        guard let spec = try? VariantSpec(run.config.variant), spec.parts.allSatisfy({ $0.variant == .baseline }) else {
            throw ProfileError(problem: "the run is a \(run.config.variant) run; a profile starts from a baseline")
        }
        let model = run.model, tasks = BenchmarkTask.all.filter(\.fineGrained)
        let side = model.geometry.imageSide
        let evaluated = tasks.map { task in (0..<samples).map { task.sample($0, split: split, side: side) } }
        func terms(_ evaluations: [Evaluation]) -> [[[Double]]] {
            zip(tasks, zip(evaluations, evaluated)).map { task, pair in task.headlineTerms(predictions: pair.0.predictions, samples: pair.1) }
        }
        let base = Evaluation.run(model: model, tasks: tasks, split: split, count: samples)
        done("baseline")
        let baseTerms = terms(base)
        let layout = Prompt(sample: evaluated[0][0], tokenizer: model.tokenizer, withAnswer: false).layout(model.geometry)
        (config, layers, self.samples, baselineScoreFine) = (model.language.config, model.language.config.layers, samples, Evaluation.scoreFine(base))
        var points: [Point] = []
        for family in Self.families {
            for start in 0..<layers {
                let variant = "\(family)@from:\(start)", spec = try VariantSpec(variant)
                let evaluations = Evaluation.run(model: try model.trainingFree(spec), tasks: tasks, split: split, count: samples)
                let paired = zip(tasks, zip(terms(evaluations), baseTerms)).map { PairedTask(task: $0, variant: $1.0, baseline: $1.1) }
                let (difference, relative) = Statistics.paired([paired], seed: fnv1a(variant.utf8))
                let flops = try AccountingRecord(config: config, spec: spec, layout: layout, features: model.encoder.features)
                points.append(Point(family: family, start: start, scoreFine: Evaluation.scoreFine(evaluations), difference: difference,
                                    relative: relative, flopsReduced: flops.reducedPercent))
                done(variant)
            }
        }
        self.points = points
    }

    /// The earliest start layer from which the family's Rel, by the lower bound of its paired
    /// interval, stays at least `targetRel` for that start and every later one; nil if none.
    /// An undefined Rel (a baseline scoring 0) keeps no start.
    public func earliestStart(_ family: String, targetRel: Double) -> Point? {
        Self.earliestStart(points.filter { $0.family == family }, targetRel: targetRel)
    }

    static func earliestStart(_ points: [Point], targetRel: Double) -> Point? {
        let sorted = points.sorted { $0.start < $1.start }
        guard let last = sorted.lastIndex(where: { !($0.relative.low >= 100 * targetRel) }) else { return sorted.first }
        return last + 1 < sorted.count ? sorted[last + 1] : nil
    }

    /// The start layer at the same fraction of the paper model's depth, and the FLOPs it saves there.
    public func atPaperShape(_ point: Point) throws -> (start: Int, flopsReduced: Double) {
        let paper = ModelPresets.paper[Self.paperModel]!
        let start = Int((Double(point.start * paper.layers) / Double(layers)).rounded())
        let flops = try AccountingRecord(config: paper, spec: VariantSpec("\(point.family)@from:\(start)"),
                                         layout: TokenLayout(grid: 24, crops: 5, system: 0, question: 50), features: 1024)
        return (start, flops.reducedPercent)
    }

    /// One row a point: its start layer and masking ratio, Score_fine, the paired difference and
    /// Rel with their intervals, and the FLOPs saved here and at the paper's shape.
    var table: Table {
        var t = Table(["variant", "start_layer", "masking_ratio", "score_fine", "score_fine_diff", "score_fine_diff_low", "score_fine_diff_high",
                       "score_fine_rel_pct", "score_fine_rel_pct_low", "score_fine_rel_pct_high", "flops_reduced_pct",
                       "paper_model", "paper_start_layer", "paper_flops_reduced_pct"])
        func fmt(_ x: Double?, _ digits: Int = 1) -> String? { Report.cell(x, digits: digits) }
        for p in points {
            let paper = try? atPaperShape(p)
            t.add([p.family, String(p.start), String(format: "%.4f", Double(layers - p.start) / Double(layers)), fmt(100 * p.scoreFine),
                   fmt(p.difference.estimate, 2), fmt(p.difference.low, 2), fmt(p.difference.high, 2),
                   fmt(p.relative.estimate), fmt(p.relative.low), fmt(p.relative.high), fmt(p.flopsReduced),
                   Self.paperModel, paper.map { String($0.start) }, fmt(paper?.flopsReduced)])
        }
        return t
    }

    /// `profile.csv` and `profile.svg`: the table, and Rel against the start layer, one line a
    /// family, with the intervals and the target's line.
    public func files(targetRel: Double) -> (csv: String, svg: String) {
        let t = table, families = t.column("variant")
        var plot = SVGPlot(title: "Redundancy profile (TF, \(samples) samples a benchmark)", xLabel: "start layer L (the variant in layers L…\(layers - 1))",
                           yLabel: "Score_fine Rel (%)")
        for (k, family) in Self.families.enumerated() {
            let points = Report.points(t, x: "start_layer", y: "score_fine_rel_pct", where: { families[$0] == family })
            plot.series.append(.init(name: "\(family) (95 % interval)", color: Report.palette[k % Report.palette.count],
                                     points: points.map(\.point), errors: points.map(\.error)))
        }
        plot.series.append(.init(name: String(format: "target %.0f %%", 100 * targetRel), color: "#888888",
                                 points: [(x: 0, y: 100 * targetRel), (x: Double(layers - 1), y: 100 * targetRel)]))
        return (t.csv, plot.svg)
    }

}

/// A run that cannot be profiled.
public struct ProfileError: InputError {
    public let problem: String
    public var description: String { problem }
}
