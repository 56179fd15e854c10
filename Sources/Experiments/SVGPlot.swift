import Accounting
import Foundation

/// A small SVG chart: numeric axes with ticks, series of points (joined by lines or not), a legend.
struct SVGPlot {
    struct Series {
        let name: String, color: String
        let points: [(x: Double, y: Double)]
        var joined = true
        /// Points drawn hollow (e.g. dominated runs), by index.
        var hollow: Set<Int> = []
        /// Each point's interval, drawn as a vertical error bar (none where nil).
        var errors: [(low: Double, high: Double)?] = []
    }

    let title: String, xLabel: String, yLabel: String
    var series: [Series] = []
    var width = 640.0, height = 420.0
    private let margin = (left: 70.0, right: 170.0, top: 40.0, bottom: 55.0)

    init(title: String, xLabel: String, yLabel: String) { self.title = title; self.xLabel = xLabel; self.yLabel = yLabel }

    var svg: String {
        let xs = series.flatMap { $0.points.map(\.x) }
        let ys = series.flatMap { $0.points.map(\.y) + $0.errors.flatMap { $0.map { [$0.low, $0.high] } ?? [] } }
        let (x0, x1) = SVGPlot.range(xs), (y0, y1) = SVGPlot.range(ys)
        let plotW = width - margin.left - margin.right, plotH = height - margin.top - margin.bottom
        // Halves first, so that a span from −max to +max does not overflow.
        func px(_ x: Double) -> Double { margin.left + (x / 2 - x0 / 2) / (x1 / 2 - x0 / 2) * plotW }
        func py(_ y: Double) -> Double { margin.top + plotH - (y / 2 - y0 / 2) / (y1 / 2 - y0 / 2) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(SVGPlot.escape(title))</text>",
                   "<rect x=\"\(f(margin.left))\" y=\"\(f(margin.top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#444\"/>"]
        for tick in SVGPlot.ticks(x0, x1) {
            out.append("<line x1=\"\(f(px(tick)))\" y1=\"\(f(margin.top + plotH))\" x2=\"\(f(px(tick)))\" y2=\"\(f(margin.top + plotH + 5))\" stroke=\"#444\"/>")
            out.append("<text x=\"\(f(px(tick)))\" y=\"\(f(margin.top + plotH + 18))\" text-anchor=\"middle\">\(SVGPlot.label(tick))</text>")
        }
        for tick in SVGPlot.ticks(y0, y1) {
            out.append("<line x1=\"\(f(margin.left - 5))\" y1=\"\(f(py(tick)))\" x2=\"\(f(margin.left))\" y2=\"\(f(py(tick)))\" stroke=\"#444\"/>")
            out.append("<text x=\"\(f(margin.left - 8))\" y=\"\(f(py(tick) + 4))\" text-anchor=\"end\">\(SVGPlot.label(tick))</text>")
        }
        out.append("<text x=\"\(f(margin.left + plotW / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(SVGPlot.escape(xLabel))</text>")
        out.append("<text transform=\"translate(18 \(f(margin.top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(SVGPlot.escape(yLabel))</text>")
        for (k, s) in series.enumerated() {
            let sorted = s.joined ? s.points.sorted { $0.x < $1.x } : s.points
            if s.joined, sorted.count > 1 {
                out.append("<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\" points=\"\(sorted.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " "))\"/>")
            }
            for (p, e) in zip(s.points, s.errors) {
                guard let e else { continue }
                let (x, lo, hi) = (f(px(p.x)), f(py(e.low)), f(py(e.high)))
                out.append("<path d=\"M\(x) \(lo)V\(hi)M\(f(px(p.x) - 4)) \(lo)h8M\(f(px(p.x) - 4)) \(hi)h8\" stroke=\"\(s.color)\" stroke-width=\"1.2\" fill=\"none\"/>")
            }
            for (i, p) in s.points.enumerated() {
                let fill = s.hollow.contains(i) ? "white" : s.color
                out.append("<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"4\" fill=\"\(fill)\" stroke=\"\(s.color)\" stroke-width=\"1.5\"/>")
            }
            let ly = margin.top + 10 + Double(k) * 18, lx = margin.left + plotW + 15
            out.append("<circle cx=\"\(f(lx))\" cy=\"\(f(ly))\" r=\"4\" fill=\"\(s.color)\"/>")
            out.append("<text x=\"\(f(lx + 10))\" y=\"\(f(ly + 4))\">\(SVGPlot.escape(s.name))</text>")
        }
        if series.allSatisfy({ $0.points.isEmpty }) {
            out.append("<text x=\"\(f(margin.left + plotW / 2))\" y=\"\(f(margin.top + plotH / 2))\" text-anchor=\"middle\" fill=\"#888\">no runs in the store for this figure</text>")
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    /// The range of the finite values, widened by 5 % (or by a unit, relative to the values'
    /// size, when they are one value); halved where its width would overflow.
    static func range(_ values: [Double]) -> (Double, Double) {
        let finite = values.filter(\.isFinite)
        guard let lo = finite.min(), let hi = finite.max() else { return (0, 1) }
        let width = (hi / 2 - lo / 2) * 2   // finite even from −max to +max once halved
        if width <= max(1e-12, 1e-12 * max(abs(lo), abs(hi))) {
            let unit = max(1, abs(lo) * 1e-3)
            return (lo - unit, hi + unit)
        }
        let pad = (hi / 2 - lo / 2) * 0.1
        return (lo - pad, hi + pad)
    }

    /// About five round tick values inside a range (none when the range is not a finite span).
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let raw = hi / 5 - lo / 5, magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        guard raw.isFinite, raw > 0, step.isFinite, step > 0, (hi / step - lo / step) < 20 else { return [] }
        return stride(from: (lo / step).rounded(.up) * step, through: hi, by: step).map { $0 }
    }

    static func label(_ v: Double) -> String {
        if abs(v) >= 1e4 || (abs(v) < 1e-2 && v != 0) { return String(format: "%.2g", v) }
        return String(format: "%g", (v * 1000).rounded() / 1000 + 0)   // + 0: no "-0"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}

extension Report {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    func figure2Plot(_ table: Table) -> String {
        var plot = SVGPlot(title: "Figure 2: TF vision-attention masking", xLabel: "masking ratio (layers − L) / layers", yLabel: "Score_fine Rel (%)")
        let models = table.column("model")
        for (k, model) in Array(Set(models.compactMap { $0 })).sorted().enumerated() {
            let points = Report.points(table, x: "masking_ratio", y: "score_fine_rel_pct", where: { models[$0] == model })
            plot.series.append(.init(name: "ours, \(model) (95 % interval)", color: Report.palette[(k + 1) % Report.palette.count],
                                     points: points.map(\.point), errors: points.map(\.error)))
        }
        let paper = PaperTables.rows("figure2_masking_ratio_digitised").filter { $0["model"] == paperModel }.compactMap { row -> (x: Double, y: Double)? in
            guard let x = Double(row["masking_ratio"] ?? ""), let y = Double(row["score_fine_rel_pct"] ?? "") else { return nil }
            return (x: x, y: y)
        }
        plot.series.append(.init(name: "paper, \(paperModel)", color: "#888888", points: paper))
        return plot.svg
    }

    func frontierPlot(_ table: Table) -> String {
        var plot = SVGPlot(title: "FLOPs against Score_fine (hollow: dominated)", xLabel: "prefill FLOPs reduced vs baseline (%)", yLabel: "Score_fine (%)")
        let (models, pareto) = (table.column("model"), table.column("pareto_optimal"))
        for (k, model) in Array(Set(models.compactMap { $0 })).sorted().enumerated() {
            let points = Report.points(table, x: "flops_reduced_pct", y: "score_fine", where: { models[$0] == model })
            plot.series.append(.init(name: model, color: Report.palette[k % Report.palette.count], points: points.map(\.point), joined: false,
                                     hollow: Set(points.indices.filter { pareto[points[$0].row] == "no" }), errors: points.map(\.error)))
        }
        return plot.svg
    }

    /// A table's rows as points (rows without both numbers left out), each with its row index
    /// and the y column's interval (`y_low`, `y_high`) where it has one.
    static func points(_ table: Table, x: String, y: String, where keep: (Int) -> Bool) -> [(row: Int, point: (x: Double, y: Double), error: (low: Double, high: Double)?)] {
        func numbers(_ column: String) -> [Double?] {
            table.header.contains(column) ? table.column(column).map { $0.flatMap(Double.init) } : Array(repeating: nil, count: table.rows.count)
        }
        let (xs, ys, lows, highs) = (numbers(x), numbers(y), numbers(y + "_low"), numbers(y + "_high"))
        return xs.indices.compactMap { i in
            guard keep(i), let px = xs[i], let py = ys[i] else { return nil }
            let error = lows[i].flatMap { lo in highs[i].map { (low: lo, high: $0) } }
            return (row: i, point: (x: px, y: py), error: error)
        }
    }
}
