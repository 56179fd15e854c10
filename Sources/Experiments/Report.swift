import Accounting
import Decoder
import Foundation
import LayerGraph

/// Tables and figures from the run store, as CSV (and SVG for figures), shaped like the paper's
/// and with the paper's numbers beside ours where the paper has a matching row. Runs that differ
/// only in their seed are averaged (the `runs` column counts them). A paper row matches when its
/// start layer sits at the same fraction of its model's depth as ours (12 of 32 ↔ 3 of 8).
public struct Report {
    public let runs: [StoredRun]
    private let byID: [String: StoredRun]
    /// The paper model whose rows stand beside ours.
    public let paperModel = "vicuna-7b"

    public init(store: RunStore) {
        runs = store.runs()
        byID = Dictionary(runs.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Writes every table and figure; returns the paths written.
    public func write(to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written: [String] = []
        func save(_ name: String, _ text: String) throws {
            let path = (directory as NSString).appendingPathComponent(name)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            written.append(path)
        }
        try save("table1_attention_skip.csv", table1().csv)
        try save("table2_attention_ffn_skip.csv", table2().csv)
        try save("table4_proxyv.csv", table4().csv)
        try save("table5_vs_token_reduction.csv", table5().csv)
        let figure2 = figure2Table()
        try save("figure2_masking_ratio.csv", figure2.csv)
        try save("figure2_masking_ratio.svg", figure2Plot(figure2))
        let frontier = flopsAgainstScore()
        try save("flops_vs_score_fine.csv", frontier.csv)
        try save("flops_vs_score_fine.svg", frontierPlot(frontier))
        try save("per_benchmark.csv", perBenchmark().csv)
        return written
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

    func timeReduced(_ run: StoredRun) -> Double? {
        guard let b = baseline(of: run), let t = run.timing["prefill_seconds_mean"],
              let tb = b.timing["prefill_seconds_mean"], tb > 0 else { return nil }
        return 100 * (1 - t / tb)
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

    func table1() -> Table {
        var t = Table(["model", "start_layer", "mode", "runs", "score_fine", "score_fine_rel_pct", "flops_reduced_pct", "time_reduced_pct",
                       "paper_model", "paper_start_layer", "paper_score_fine_rel_pct", "paper_flops_reduced_pct", "paper_time_reduced_pct"])
        for row in rows where row.variantName == "skip-vattn" && row.mode != "full" {
            let paper = paperRow("table1_attention_skip", for: row) { $0["mode"] == row.mode.uppercased() }
            t.add([row.model, row.startLayer.map(String.init), row.mode.uppercased(), String(row.runs.count)]
                  + ours(row) + paperColumns(paper, ["start_layer", "score_fine_rel_pct", "flops_reduced_pct", "time_reduced_pct"]))
        }
        return t
    }

    func table2() -> Table {
        var t = Table(["model", "start_layer", "skipped", "mode", "runs", "score_fine", "score_fine_rel_pct", "flops_reduced_pct", "time_reduced_pct",
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
        var t = Table(["model", "setting", "start_layer", "mode", "runs", "score_fine", "score_fine_rel_pct", "flops_reduced_pct", "time_reduced_pct",
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
        var t = Table(["model", "method", "variant", "mode", "runs", "score_fine", "refcoco", "docparsing_bleu", "docparsing_edit_distance",
                       "flops_reduced_pct", "time_reduced_pct", "paper_model", "paper_method", "paper_score_fine", "paper_refcoco",
                       "paper_docparsing_bleu", "paper_docparsing_edit_distance", "paper_flops_reduced_pct", "paper_time_reduced_pct"])
        let methods = ["baseline": "baseline", "proxyv": "proxyv-layer12", "visionzip": "visionzip", "pyramiddrop": "pyramiddrop"]
        for row in rows {
            guard let name = row.variantName, let method = methods[name] else { continue }
            // The paper's ProxyV row is the one from layer 12.
            let paperDepth = name != "proxyv" || row.atDepth(ofPaperLayer: 12, of: paperLayers)
            let paper = paperDepth ? PaperTables.rows("table5_vs_token_reduction").first { $0["model"] == paperModel && $0["method"] == method } : nil
            let score = { (bench: String, metric: String) in fmt(row.mean { $0.benchmarks[bench]?.scores[metric] }, digits: 4) }
            t.add([row.model, name, row.first.variant, row.mode.uppercased(), String(row.runs.count), fmt(row.mean { 100 * $0.scoreFine }),
                   fmt(row.mean { $0.benchmarks["grounding"].map { 100 * $0.headline } }), score("doc-parse", "bleu4"), score("doc-parse", "edit_distance"),
                   fmt(row.mean(\.flopsReducedPercent)), fmt(row.mean(timeReduced))]
                  + paperColumns(paper, ["method", "score_fine", "refcoco", "docparsing_bleu", "docparsing_edit_distance", "flops_reduced_pct", "time_reduced_pct"]))
        }
        return t
    }

    /// Figure 2: relative Score_fine of training-free vision-attention masking against the
    /// masking ratio (layers − L) / layers, ours beside the paper's digitised curve.
    func figure2Table() -> Table {
        var t = Table(["model", "masking_ratio", "start_layer", "runs", "score_fine_rel_pct", "paper_model", "paper_score_fine_rel_pct"])
        let paper = PaperTables.rows("figure2_masking_ratio_digitised").filter { $0["model"] == paperModel }
        var points: [(Double, [String?])] = []
        for row in rows where row.variantName == "mask-vv" && row.mode == "tf" {
            guard let layers = row.layers, let start = row.startLayer else { continue }
            let ratio = Double(layers - start) / Double(layers)
            let match = paper.first { abs((Double($0["masking_ratio"] ?? "") ?? -1) - ratio) < 1e-9 }
            points.append((ratio, [row.model, fmt(ratio, digits: 4), String(start), String(row.runs.count), fmt(row.mean(relative)),
                                   match == nil ? nil : paperModel, match?["score_fine_rel_pct"]]))
        }
        for (_, cells) in points.sorted(by: { $0.0 < $1.0 }) { t.add(cells) }
        return t
    }

    /// Every run (seeds averaged): FLOPs against Score_fine, the Pareto-optimal ones marked —
    /// no other run of the same model has fewer or equal FLOPs and a higher or equal score.
    func flopsAgainstScore() -> Table {
        var t = Table(["model", "variant", "mode", "runs", "flops", "flops_reduced_pct", "score_fine", "score_fine_rel_pct", "pareto_optimal"])
        let all = rows.map { (row: $0, flops: $0.first.flops, score: $0.mean(\.scoreFine) ?? 0) }
        for (row, flops, score) in all {
            let dominated = all.contains { other in
                guard other.row.model == row.model, other.row.first.id != row.first.id else { return false }
                return other.flops <= flops && other.score >= score && (other.flops < flops || other.score > score)
            }
            t.add([row.model, row.first.variant, row.mode.uppercased(), String(row.runs.count), String(format: "%.6g", flops),
                   fmt(row.mean(\.flopsReducedPercent)), fmt(100 * score), fmt(row.mean(relative)), dominated ? "no" : "yes"])
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

    // MARK: Cells

    private func ours(_ row: Row) -> [String?] {
        [fmt(row.mean { 100 * $0.scoreFine }), fmt(row.mean(relative)), fmt(row.mean(\.flopsReducedPercent)), fmt(row.mean(timeReduced))]
    }

    private func paperColumns(_ row: [String: String]?, _ columns: [String]) -> [String?] {
        guard let row else { return [nil] + columns.map { _ in nil } }
        return [paperModel] + columns.map { row[$0].flatMap { $0.isEmpty ? nil : $0 } }
    }

    private func fmt(_ x: Double?, digits: Int = 1) -> String? { x.map { String(format: "%.\(digits)f", $0) } }
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
