import Accounting
import Benchmarks
import Decoder
import Foundation
import Kernels
import LayerGraph

/// Tables and figures from the run store, as CSV (and SVG for figures), shaped like the paper's
/// and with the paper's numbers beside ours where the paper has a matching row. Runs that differ
/// only in their seed are averaged (the `runs` column counts them). A paper row matches when its
/// start layer sits at the same fraction of its model's depth as ours (12 of 32 ↔ 3 of 8).
///
/// Intervals are 95 %, in columns `X_low` and `X_high` beside `X`: a row's Score_fine by
/// Student's t over its seeds; a variant's difference from its baseline (`_diff`, points) and
/// its Rel by a paired bootstrap over the evaluated samples (`Statistics.pairedBootstrap`).
/// Prefill time reduced is the median pair's, and `_min`/`_max` the least and greatest pair's
/// over the row's runs: a spread, not an interval.
public struct Report {
    public let runs: [StoredRun]
    private let byID: [String: StoredRun]
    /// The paper model whose rows stand beside ours.
    public let paperModel = "vicuna-7b"

    private let samples = SampleCache()

    /// Runs in the store that no table shows (and files that are not runs), and why.
    public let leftOut: [(id: String, reason: String)]

    public init(store: RunStore) {
        let (all, unreadable) = store.scan()
        let byID = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var leftOut = unreadable.map { (id: ($0.path as NSString).lastPathComponent, reason: $0.reason) }
        runs = all.filter { run in
            guard let reason = Report.refusal(of: run, baseline: run.baselineID.flatMap { byID[$0] }) else { return true }
            leftOut.append((run.id, reason))
            return false
        }
        (self.byID, self.leftOut) = (byID, leftOut)
    }

    /// Why an FT run cannot be compared with its baseline: it trained longer (an FT run of the
    /// paper differs from its baseline only in the variant), or it was made by the earlier
    /// finetuning, which ran a second stage 2 on a fully trained baseline.
    static func refusal(of run: StoredRun, baseline: StoredRun?) -> String? {
        guard run.mode == RunMode.ft.rawValue, let spec = run.spec else { return nil }
        guard spec.code.hasSuffix(", finetuning \(RunSpec.finetuningCode)") else {
            return "FT run made by other finetuning code ('\(spec.code)'); FT now starts at its baseline's stage 2"
        }
        func steps(_ s: RunSpec) -> Int { s.languageSteps + s.stage1Steps + s.steps }
        if let b = baseline?.spec, steps(spec) > steps(b) { return "FT run trained \(steps(spec)) steps, its baseline \(steps(b))" }
        return nil
    }

    /// Every table and every figure (SVG), by file name.
    func contents() -> (tables: [(name: String, table: Table)], figures: [(name: String, svg: String)]) {
        let figure2 = figure2Table(), frontier = flopsAgainstScore()
        return ([("table1_attention_skip.csv", table1()), ("table2_attention_ffn_skip.csv", table2()),
                 ("table4_proxyv.csv", table4()), ("table5_vs_token_reduction.csv", table5()),
                 ("table6_learned_proxyv.csv", table6()), ("peers_computation_level.csv", peers()),
                 ("figure2_masking_ratio.csv", figure2), ("flops_vs_score_fine.csv", frontier),
                 ("per_benchmark.csv", perBenchmark()), ("paired_differences.csv", pairedDifferences())],
                [("figure2_masking_ratio.svg", figure2Plot(figure2)), ("flops_vs_score_fine.svg", frontierPlot(frontier))])
    }

    /// Every file of the report by name: the tables (CSV), the figures (SVG) and, with `html`,
    /// `index.html`, which holds them all.
    public func files(html: Bool = false) -> [(name: String, text: String)] {
        let (tables, figures) = contents()
        return tables.map { ($0.name, $0.table.csv) } + figures.map { ($0.name, $0.svg) }
            + (html ? [("index.html", page(tables: tables, figures: figures))] : [])
    }

    /// Writes every file of the report as a set (all new, or, on a failure, all as they were);
    /// returns the paths written.
    public func write(to directory: String, html: Bool = false) throws -> [String] {
        try DurableWrite.makeDirectory(directory)
        let files = self.files(html: html).map { (path: (directory as NSString).appendingPathComponent($0.name), data: Data($0.text.utf8)) }
        try DurableWrite.replaceAll(files)
        return files.map(\.path)
    }

    // MARK: Rows of runs

    /// One row of ours: runs equal but for their seed, averaged.
    struct Row {
        let runs: [StoredRun]
        var first: StoredRun { runs[0] }
        var model: String { first.model }
        var mode: String { first.mode }
        /// The single variant's name and first layer (nil for combinations).
        var variantName: String? { parsed?.name }
        var startLayer: Int? { parsed?.start }
        var layers: Int? { LlamaConfig.presets[model]?.layers ?? ModelPresets.paper[model]?.layers }

        private var parsed: (name: String, start: Int?)? {
            guard let spec = try? VariantSpec(first.variant), spec.parts.count == 1 else { return nil }
            let part = spec.parts[0]
            return (part.variant.name, layers.flatMap { part.schedule.layers(of: $0).first })
        }

        /// Whether the start layer sits at the same fraction of depth as `paperStart` of the paper model's layers.
        func atDepth(ofPaperLayer paperStart: Int, of paperLayers: Int) -> Bool {
            guard let startLayer, let layers else { return false }
            return paperStart * layers == startLayer * paperLayers
        }

        func mean(_ value: (StoredRun) -> Double?) -> Double? {
            let values = runs.compactMap(value)
            return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
        }
    }

    /// Runs grouped by everything but the seed, in store order.
    var rows: [Row] {
        var groups: [String: [StoredRun]] = [:], order: [String] = []
        for run in runs {
            let key = run.spec.map { s -> String in var t = s; t.seed = 0; return t.json } ?? run.config
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(run)
        }
        return order.map { Row(runs: groups[$0]!) }
    }

    /// The run's named baseline; for imported results, an imported baseline of the same model.
    func baseline(of run: StoredRun) -> StoredRun? {
        if let id = run.baselineID { return byID[id] }
        guard run.source != "squeeze" else { return nil }
        return runs.first { $0.source != "squeeze" && $0.model == run.model && $0.variant == "baseline" }
    }

    func relative(_ run: StoredRun) -> Double? {
        guard let b = baseline(of: run), b.scoreFine > 0 else { return nil }
        return 100 * run.scoreFine / b.scoreFine
    }

    /// Prefill time reduced (%) by the median of the pairs' ratios to the baseline graph, timed
    /// in turn (`RunExecutor.prefillTiming`); `ratio` picks the least or greatest pair instead.
    /// Nil for runs made before it was measured: the evaluation's mean prefill shares the cores
    /// with other work and means nothing as a comparison.
    func timeReduced(_ run: StoredRun, ratio: String = "median") -> Double? {
        run.timing["prefill_time_ratio_" + ratio].map { 100 * (1 - $0) }
    }

    /// The paper's row for a start layer at the same fraction of depth (paper model: 32 layers).
    /// A baseline row (no start layer) matches the paper's row without one.
    func paperRow(_ file: String, for row: Row, baseline: Bool = false, where match: ([String: String]) -> Bool) -> [String: String]? {
        PaperTables.rows(file).first { paper in
            guard paper["model"] == paperModel, match(paper) else { return false }
            guard let paperStart = Int(paper["start_layer"] ?? "") else { return baseline }
            return !baseline && row.atDepth(ofPaperLayer: paperStart, of: paperLayers)
        }
    }

    var paperLayers: Int { ModelPresets.paper[paperModel]!.layers }

    // MARK: Tables

    /// Our columns of a paper table's row.
    static let ourColumns = ["score_fine", "score_fine_low", "score_fine_high", "score_fine_rel_pct", "score_fine_rel_pct_low", "score_fine_rel_pct_high",
                             "score_fine_diff", "score_fine_diff_low", "score_fine_diff_high", "flops_reduced_pct",
                             "time_reduced_pct", "time_reduced_pct_min", "time_reduced_pct_max"]

    func table1() -> Table {
        var t = Table(["model", "start_layer", "mode", "runs"] + Report.ourColumns + [
                       "paper_model", "paper_start_layer", "paper_score_fine_rel_pct", "paper_flops_reduced_pct", "paper_time_reduced_pct"])
        for row in rows where row.variantName == "skip-vattn" && row.mode != "full" {
            let paper = paperRow("table1_attention_skip", for: row) { $0["mode"] == row.mode.uppercased() }
            t.add([row.model, row.startLayer.map(String.init), row.mode.uppercased(), String(row.runs.count)]
                  + ours(row) + paperColumns(paper, ["start_layer", "score_fine_rel_pct", "flops_reduced_pct", "time_reduced_pct"]))
        }
        return t
    }

    func table2() -> Table {
        var t = Table(["model", "start_layer", "skipped", "mode", "runs"] + Report.ourColumns + [
                       "paper_model", "paper_start_layer", "paper_score_fine_rel_pct", "paper_flops_reduced_pct", "paper_time_reduced_pct"])
        for row in rows where (row.variantName == "skip-vattn" || row.variantName == "skip-vattn-ffn") && row.mode != "tf" {
            let skipped = row.variantName == "skip-vattn" ? "ATN" : "ATN+FFN"
            let paper = paperRow("table2_attention_ffn_skip", for: row) { $0["skipped"] == skipped }
            t.add([row.model, row.startLayer.map(String.init), skipped, row.mode.uppercased(), String(row.runs.count)]
                  + ours(row) + paperColumns(paper, ["start_layer", "score_fine_rel_pct", "flops_reduced_pct", "time_reduced_pct"]))
        }
        return t
    }

    func table4() -> Table {
        var t = Table(["model", "setting", "start_layer", "mode", "runs"] + Report.ourColumns + [
                       "paper_model", "paper_start_layer", "paper_score_fine", "paper_score_fine_rel_pct", "paper_flops_reduced_pct", "paper_time_reduced_pct"])
        for row in rows where row.variantName == "baseline" || row.variantName == "proxyv" {
            let setting = row.variantName!
            let paper = paperRow("table4_proxyv_across_llms", for: row, baseline: setting == "baseline") { $0["setting"] == setting }
            t.add([row.model, setting, setting == "baseline" ? "" : row.startLayer.map(String.init), row.mode.uppercased(), String(row.runs.count)]
                  + ours(row) + paperColumns(paper, ["start_layer", "score_fine", "score_fine_rel_pct", "flops_reduced_pct", "time_reduced_pct"]))
        }
        return t
    }

    func table5() -> Table {
        var t = Table(["model", "method", "variant", "mode", "runs"] + Report.ourColumns + ["refcoco", "docparsing_bleu", "docparsing_edit_distance",
                       "paper_model", "paper_method", "paper_score_fine", "paper_refcoco",
                       "paper_docparsing_bleu", "paper_docparsing_edit_distance", "paper_flops_reduced_pct", "paper_time_reduced_pct"])
        let methods = ["baseline": "baseline", "proxyv": "proxyv-layer12", "visionzip": "visionzip", "pyramiddrop": "pyramiddrop"]
        for row in rows {
            guard let name = row.variantName, let method = methods[name] else { continue }
            // The paper's ProxyV row is the one from layer 12.
            let paperDepth = name != "proxyv" || row.atDepth(ofPaperLayer: 12, of: paperLayers)
            let paper = paperDepth ? PaperTables.rows("table5_vs_token_reduction").first { $0["model"] == paperModel && $0["method"] == method } : nil
            let score = { (bench: String, metric: String) in fmt(row.mean { $0.benchmarks[bench]?.scores[metric] }, digits: 4) }
            t.add([row.model, name, row.first.variant, row.mode.uppercased(), String(row.runs.count)] + ours(row)
                  + [fmt(row.mean { $0.benchmarks["grounding"].map { 100 * $0.headline } }), score("doc-parse", "bleu4"), score("doc-parse", "edit_distance")]
                  + paperColumns(paper, ["method", "score_fine", "refcoco", "docparsing_bleu", "docparsing_edit_distance", "flops_reduced_pct", "time_reduced_pct"]))
        }
        return t
    }

    /// Table 6 (whose rows the paper's text gives only in part): learned ProxyV alone and after
    /// VisionZip, beside the baselines and VisionZip alone.
    func table6() -> Table {
        var t = Table(["model", "variant", "mode", "runs"] + Report.ourColumns + ["refcoco", "docparsing_bleu"])
        for row in rows where row.variantName == "baseline" || row.variantName == "visionzip" || row.first.variant.contains("proxyv-learned") {
            t.add([row.model, row.first.variant, row.mode.uppercased(), String(row.runs.count)] + ours(row)
                  + [fmt(row.mean { $0.benchmarks["grounding"].map { 100 * $0.headline } }),
                     fmt(row.mean { $0.benchmarks["doc-parse"]?.scores["bleu4"] }, digits: 4)])
        }
        return t
    }

    /// The peers' computation-level designs since ProxyV beside ProxyV, the token-reduction
    /// baselines and their baselines: Score_fine, the paired differences on grounding and
    /// document parsing (points of their headlines), and the FLOPs, KV cache and time they save.
    func peers() -> Table {
        let designs = ["baseline": "baseline", "proxyv": "proxy tokens (ProxyV)", "visionzip": "token reduction", "pyramiddrop": "token reduction",
                       "skip-vffn": "FFN skipped (Skip-Vision)", "kv-only": "keys and values only, re-projected (SAISA)",
                       "mod": "routed (p-MoD)", "downsample": "pooled before the decoder (VTC-Bench)"]
        var t = Table(["model", "design", "variant", "mode", "runs"] + Report.ourColumns + ["kv_cache_reduced_pct",
                       "grounding", "grounding_diff", "grounding_diff_low", "grounding_diff_high",
                       "docparsing_bleu", "docparsing_diff", "docparsing_diff_low", "docparsing_diff_high"])
        for row in rows {
            guard let name = row.variantName, let design = designs[name] else { continue }
            let kv = row.mean { r in baseline(of: r).flatMap { $0.kvCacheBytes > 0 ? 100 * (1 - r.kvCacheBytes / $0.kvCacheBytes) : nil } }
            let task = { (benchmark: String) -> [String?] in
                let c = self.paired(row, over: [benchmark])?.difference
                return [self.fmt(row.mean { $0.benchmarks[benchmark].map { 100 * $0.headline } }),
                        self.fmt(c?.estimate, digits: 2), self.fmt(c?.low, digits: 2), self.fmt(c?.high, digits: 2)]
            }
            t.add([row.model, design, row.first.variant, row.mode.uppercased(), String(row.runs.count)] + ours(row)
                  + [fmt(kv)] + task("grounding") + task("doc-parse"))
        }
        return t
    }

    /// Figure 2: relative Score_fine of training-free vision-attention masking against the
    /// masking ratio (layers − L) / layers, ours beside the paper's digitised curve.
    func figure2Table() -> Table {
        var t = Table(["model", "masking_ratio", "start_layer", "runs", "score_fine_rel_pct", "score_fine_rel_pct_low", "score_fine_rel_pct_high",
                       "paper_model", "paper_score_fine_rel_pct"])
        let paper = PaperTables.rows("figure2_masking_ratio_digitised").filter { $0["model"] == paperModel }
        var points: [(Double, [String?])] = []
        for row in rows where row.variantName == "mask-vv" && row.mode == "tf" {
            guard let layers = row.layers, let start = row.startLayer else { continue }
            let ratio = Double(layers - start) / Double(layers)
            let match = paper.first { abs((Double($0["masking_ratio"] ?? "") ?? -1) - ratio) < 1e-9 }
            let rel = paired(row, over: fineBenchmarks(row))?.relative
            points.append((ratio, [row.model, fmt(ratio, digits: 4), String(start), String(row.runs.count), fmt(row.mean(relative)), fmt(rel?.low), fmt(rel?.high),
                                   match == nil ? nil : paperModel, match?["score_fine_rel_pct"]]))
        }
        for (_, cells) in points.sorted(by: { $0.0 < $1.0 }) { t.add(cells) }
        return t
    }

    /// Every run (seeds averaged): FLOPs against Score_fine, the Pareto-optimal ones marked —
    /// no other run of the same model has fewer or equal FLOPs and a higher or equal score.
    func flopsAgainstScore() -> Table {
        var t = Table(["model", "variant", "mode", "runs", "flops", "flops_reduced_pct", "score_fine", "score_fine_low", "score_fine_high",
                       "score_fine_rel_pct", "pareto_optimal"])
        let all = rows.map { (row: $0, flops: $0.first.flops, score: $0.mean(\.scoreFine) ?? 0) }
        for (row, flops, score) in all {
            let dominated = all.contains { other in
                guard other.row.model == row.model, other.row.first.id != row.first.id else { return false }
                return other.flops <= flops && other.score >= score && (other.flops < flops || other.score > score)
            }
            let spread = Statistics.tInterval(row.runs.map { 100 * $0.scoreFine })
            t.add([row.model, row.first.variant, row.mode.uppercased(), String(row.runs.count), String(format: "%.6g", flops),
                   fmt(row.mean(\.flopsReducedPercent)), fmt(100 * score), fmt(spread?.low), fmt(spread?.high), fmt(row.mean(relative)), dominated ? "no" : "yes"])
        }
        return t
    }

    /// Every run's headline score on every benchmark.
    func perBenchmark() -> Table {
        let names = Array(Set(runs.flatMap(\.benchmarks.keys))).sorted()
        var t = Table(["run", "model", "variant", "mode", "seed", "score_fine"] + names)
        for run in runs {
            t.add([run.id, run.model, run.variant, run.mode.uppercased(), run.seed, fmt(100 * run.scoreFine)]
                  + names.map { n in fmt(run.benchmarks[n].map { 100 * $0.headline }) })
        }
        return t
    }

    /// Every variant's row against its baselines, on Score_fine and on each benchmark: the
    /// baseline's and the variant's mean score, their paired difference and Rel with intervals.
    func pairedDifferences() -> Table {
        var t = Table(["model", "variant", "mode", "runs", "benchmark", "baseline_score", "score", "diff", "diff_low", "diff_high",
                       "rel_pct", "rel_pct_low", "rel_pct_high"])
        for row in rows where !row.runs.contains(where: { baseline(of: $0)?.id == $0.id }) {
            let names = Array(Set(row.runs.flatMap(\.perSample.keys))).sorted()
            for (benchmark, sets) in [("score_fine", fineBenchmarks(row))] + names.map({ ($0, [$0]) }) {
                guard let c = paired(row, over: sets) else { continue }
                let headline = { (r: StoredRun) in benchmark == "score_fine" ? r.scoreFine : r.benchmarks[benchmark]?.headline }
                t.add([row.model, row.first.variant, row.mode.uppercased(), String(row.runs.count), benchmark,
                       fmt(row.mean { baseline(of: $0).flatMap(headline).map { 100 * $0 } }), fmt(row.mean { headline($0).map { 100 * $0 } }),
                       fmt(c.difference.estimate, digits: 2), fmt(c.difference.low, digits: 2), fmt(c.difference.high, digits: 2),
                       fmt(c.relative.estimate), fmt(c.relative.low), fmt(c.relative.high)])
            }
        }
        return t
    }

    // MARK: Paired comparisons

    /// The fine-grained benchmarks every run of the row was evaluated on (Score_fine's).
    func fineBenchmarks(_ row: Row) -> [String] {
        BenchmarkTask.all.filter(\.fineGrained).map(\.name).filter { name in row.runs.allSatisfy { $0.perSample[name] != nil } }
    }

    /// The row's runs against their baselines, seed by seed on the same samples, on the mean
    /// headline of `names` (Score_fine when they are its benchmarks): the mean over seeds of the
    /// difference (points, 100 × headline) and of Rel (%), with paired-bootstrap intervals. Nil
    /// for a baseline, a run without a baseline or without per-sample results, or samples that
    /// differ between a run and its baseline.
    func paired(_ row: Row, over names: [String]) -> (difference: Interval, relative: Interval)? {
        let pairs = row.runs.compactMap { r in baseline(of: r).map { (variant: r, baseline: $0) } }
        guard !names.isEmpty, pairs.count == row.runs.count, pairs.allSatisfy({ $0.variant.id != $0.baseline.id }) else { return nil }
        // Per seed and benchmark: the task and both runs' headline terms (corpus scores' from the
        // predictions and the samples, regenerated).
        var seeds: [[PairedTask]] = []
        for (variant, base) in pairs {
            var seed: [PairedTask] = []
            for name in names {
                guard let task = BenchmarkTask.named(name), let v = variant.perSample[name], let b = base.perSample[name],
                      v.values.count == b.values.count, !v.values.isEmpty, let spec = variant.spec else { return nil }
                if task.headlineIsMean {
                    seed.append(PairedTask(task: task, variant: v.values.map { [$0] }, baseline: b.values.map { [$0] }))
                } else {
                    let side = VisionGeometry(grid: spec.grid, patch: spec.patch, crops: spec.crops).imageSide
                    let evaluated = samples.samples(task, split: spec.split, side: side, count: v.values.count)
                    seed.append(PairedTask(task: task, variant: task.headlineTerms(predictions: v.predictions, samples: evaluated),
                                           baseline: task.headlineTerms(predictions: b.predictions, samples: evaluated)))
                }
            }
            seeds.append(seed)
        }
        return Statistics.paired(seeds, seed: fnv1a((row.first.config + names.joined(separator: ",")).utf8))
    }

    // MARK: Cells

    private func ours(_ row: Row) -> [String?] {
        let spread = Statistics.tInterval(row.runs.map { 100 * $0.scoreFine }), c = paired(row, over: fineBenchmarks(row))
        return [fmt(row.mean { 100 * $0.scoreFine }), fmt(spread?.low), fmt(spread?.high),
                fmt(row.mean(relative)), fmt(c?.relative.low), fmt(c?.relative.high),
                fmt(c?.difference.estimate, digits: 2), fmt(c?.difference.low, digits: 2), fmt(c?.difference.high, digits: 2),
                fmt(row.mean(\.flopsReducedPercent)), fmt(row.mean { timeReduced($0) }),
                fmt(row.runs.compactMap { timeReduced($0, ratio: "max") }.min()), fmt(row.runs.compactMap { timeReduced($0, ratio: "min") }.max())]
    }

    private func paperColumns(_ row: [String: String]?, _ columns: [String]) -> [String?] {
        guard let row else { return [nil] + columns.map { _ in nil } }
        return [paperModel] + columns.map { row[$0].flatMap { $0.isEmpty ? nil : $0 } }
    }

    /// A table cell: the number to `digits` decimals, empty where it is missing or not finite.
    static func cell(_ x: Double?, digits: Int = 1) -> String? { x.flatMap { $0.isFinite ? String(format: "%.\(digits)f", $0) : nil } }
    private func fmt(_ x: Double?, digits: Int = 1) -> String? { Report.cell(x, digits: digits) }
}

/// Benchmark samples regenerated for corpus scores' redraws, each set once per report.
final class SampleCache: @unchecked Sendable {
    private var cache: [String: [Sample]] = [:]
    private let lock = NSLock()

    func samples(_ task: BenchmarkTask, split: Split, side: Int, count: Int) -> [Sample] {
        let key = "\(task.name)/\(split.rawValue)/\(side)/\(count)"
        if let hit = lock.withLock({ cache[key] }) { return hit }
        let made = Parallel.map(count) { task.sample($0, split: split, side: side) }
        lock.withLock { cache[key] = made }
        return made
    }
}

/// A CSV table: a header and rows of optional cells (nil is an empty cell).
struct Table {
    let header: [String]
    private(set) var rows: [[String?]] = []

    init(_ header: [String]) { self.header = header }

    mutating func add(_ cells: [String?]) {
        precondition(cells.count == header.count, "row of \(cells.count) cells under \(header.count) columns")
        rows.append(cells)
    }

    func column(_ name: String) -> [String?] { let i = header.firstIndex(of: name)!; return rows.map { $0[i] } }

    var csv: String {
        func escape(_ s: String) -> String { s.contains(where: { ",\"\n".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        return ([header] + rows.map { $0.map { $0 ?? "" } }).map { $0.map(escape).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
