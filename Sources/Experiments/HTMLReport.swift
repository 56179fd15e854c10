import Foundation

/// The report as one self-contained page (`index.html`): every figure inline, every table, and
/// each run's configuration and provenance. Nothing is fetched: no scripts, fonts or images
/// from elsewhere, so it opens offline and archives as one file.
extension Report {
    /// What each file shows, for its caption.
    static let captions: [String: String] = [
        "table1_attention_skip.csv": "Table 1: vision attention skipped (skip-vattn), training-free (TF) and finetuned (FT), by start layer.",
        "table2_attention_ffn_skip.csv": "Table 2: attention (ATN) or attention and FFN (ATN+FFN, light MLPs) skipped, by start layer.",
        "table4_proxyv.csv": "Table 4: spatial ProxyV by start layer, beside the baselines.",
        "table5_vs_token_reduction.csv": "Table 5: ProxyV against token reduction (VisionZip, PyramidDrop) at similar cost, with grounding and document parsing.",
        "table6_learned_proxyv.csv": "Table 6: learned (non-spatial) ProxyV alone and after VisionZip.",
        "peers_computation_level.csv": "The peers' computation-level designs since ProxyV (Skip-Vision, SAISA, p-MoD, pooling) beside ProxyV and token reduction.",
        "figure2_masking_ratio.csv": "Figure 2's points: TF vision-to-vision masking against the masking ratio.",
        "flops_vs_score_fine.csv": "Every row's prefill FLOPs against Score_fine; Pareto-optimal rows marked.",
        "per_benchmark.csv": "Every run's headline score on every benchmark.",
        "paired_differences.csv": "Per benchmark: each variant's paired difference from its baseline and Rel, with 95 % intervals.",
        "figure2_masking_ratio.svg": "Figure 2: Score_fine Rel of TF vision-attention masking against the masking ratio, ours (95 % intervals) beside the paper's.",
        "flops_vs_score_fine.svg": "Prefill FLOPs reduced against Score_fine; hollow points are dominated.",
    ]

    func page(tables: [(name: String, table: Table)], figures: [(name: String, svg: String)]) -> String {
        let e = SVGPlot.escape
        let latest = runs.map(\.finished).max() ?? "–"
        var out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Squeeze results</title>", "<style>",
                   "body{font-family:sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}",
                   "table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:2px 6px;white-space:nowrap}",
                   "th{background:#f0f0f0;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}",
                   ".scroll{overflow:auto;max-height:36em}figure{display:inline-block;margin:0 1em 1em 0}pre{font-size:12px;background:#f7f7f7;padding:.5em}",
                   "nav a{margin-right:1em}", "</style></head><body>",
                   "<h1>Squeeze results</h1>",
                   "<p>\(runs.count) complete runs (the latest finished \(e(latest))), \(leftOut.count) files left out. Written by <code>squeeze report --html</code> from the run store: every number comes from a run file.</p>",
                   "<nav><a href=\"#figures\">Figures</a>" + tables.map { "<a href=\"#\(e($0.name))\">\(e($0.name))</a>" }.joined() + "<a href=\"#runs\">Runs</a></nav>",
                   "<section id=\"figures\"><h2>Figures</h2>"]
        for (name, svg) in figures {
            out.append("<figure id=\"\(e(name))\">\(svg)<figcaption>\(e(Self.captions[name] ?? name)) (<code>\(e(name))</code>)</figcaption></figure>")
        }
        out.append("</section><section id=\"tables\"><h2>Tables</h2>")
        for (name, table) in tables {
            out.append("<h3>\(e(name))</h3><p>\(e(Self.captions[name] ?? "")) \(table.rows.count) rows.</p>")
            out.append(htmlTable(table, id: name))
        }
        out.append("</section><section id=\"runs\"><h2>Runs</h2><p>Each run's provenance; its resolved configuration below.</p>")
        var provenance = Table(["run", "model", "variant", "mode", "seed", "score_fine", "git_revision", "machine", "started", "finished",
                                "train_seconds", "eval_seconds"])
        for r in runs {
            provenance.add([r.id, r.model, r.variant, r.mode.uppercased(), r.seed, String(format: "%.1f", 100 * r.scoreFine), r.gitRevision,
                            r.machine.isEmpty ? "not recorded" : r.machine, r.started, r.finished,
                            r.timing["train_seconds"].map { String(format: "%.0f", $0) }, r.timing["eval_seconds"].map { String(format: "%.0f", $0) }])
        }
        out.append(htmlTable(provenance, id: "runs-provenance"))
        for r in runs {
            let json = (try? JSONSerialization.jsonObject(with: Data(r.config.utf8)))
                .flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.prettyPrinted, .sortedKeys]) }
                .map { String(decoding: $0, as: UTF8.self) } ?? r.config
            out.append("<details id=\"run-\(e(r.id))\"><summary><code>\(e(r.id))</code> \(e(r.variant)) · \(e(r.mode.uppercased())) · seed \(e(r.seed))</summary><pre>\(e(json))</pre></details>")
        }
        if !leftOut.isEmpty {
            out.append("<h3>Left out</h3><ul>" + leftOut.map { "<li><code>\(e($0.id))</code>: \(e($0.reason))</li>" }.joined() + "</ul>")
        }
        out.append("</section></body></html>")
        return out.joined(separator: "\n") + "\n"
    }

    private func htmlTable(_ table: Table, id: String) -> String {
        let e = SVGPlot.escape
        let head = "<tr>" + table.header.map { "<th>\(e($0))</th>" }.joined() + "</tr>"
        let body = table.rows.map { row in
            "<tr>" + row.map { cell in
                let text = cell ?? ""
                return Double(text) != nil ? "<td class=\"n\">\(e(text))</td>" : "<td>\(e(text))</td>"
            }.joined() + "</tr>"
        }
        return "<div class=\"scroll\"><table id=\"\(e(id))\"><thead>\(head)</thead><tbody>\n" + body.joined(separator: "\n") + "\n</tbody></table></div>"
    }
}
