import Benchmarks
import Foundation
import Kernels

/// A point estimate with its 95 % interval.
public struct Interval: Equatable, Sendable {
    public let estimate: Double, low: Double, high: Double
    public init(estimate: Double, low: Double, high: Double) { self.estimate = estimate; self.low = low; self.high = high }
}

/// The reports' intervals: Student's t over seeds for a row's mean, and a paired bootstrap over
/// the evaluated samples for a variant against its baseline.
public enum Statistics {
    /// Student's t's 97.5th percentile with `df` degrees of freedom: the two-sided 95 % quantile.
    public static func t975(df: Int) -> Double {
        precondition(df >= 1)
        let table = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                     2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                     2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423]
        if df <= table.count { return table[df - 1] }
        // Beyond 30 degrees, the Cornish–Fisher expansion around the normal quantile (error < 1e-4).
        let z = 1.959964, n = Double(df)
        return z + (pow(z, 3) + z) / (4 * n) + (5 * pow(z, 5) + 16 * pow(z, 3) + 3 * z) / (96 * n * n)
    }

    /// The mean of values (one a seed) and its 95 % interval, mean ± t·s/√n; nil below two values.
    public static func tInterval(_ values: [Double]) -> Interval? {
        guard values.count > 1 else { return nil }
        let n = Double(values.count), mean = values.reduce(0, +) / n
        let s = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)).squareRoot()
        let half = t975(df: values.count - 1) * s / n.squareRoot()
        return Interval(estimate: mean, low: mean - half, high: mean + half)
    }

    /// Paired bootstrap. `sampleCounts[seed][set]` is how many samples each sample set (a
    /// benchmark) of each seed holds; `statistic` maps a draw of every set — `draw[seed][set]`,
    /// indices into its samples — to the statistics, computed from the variant's and its
    /// baseline's results on the same drawn samples (so the pair's common noise cancels). The
    /// estimates are the statistics of the samples as evaluated; the intervals are the 2.5th and
    /// 97.5th percentiles over `resamples` redraws of every set with replacement, seeds and sets
    /// drawn apart (their samples were). Redraws that give a non-finite statistic are left out.
    public static func pairedBootstrap(sampleCounts: [[Int]], resamples: Int = 1000, seed: UInt64,
                                       statistic: @Sendable ([[[Int]]]) -> [Double]) -> [Interval] {
        precondition(resamples > 1)
        let whole = sampleCounts.map { $0.map { Array(0..<$0) } }
        let estimates = statistic(whole)
        var rng = SeededGenerator(seed: seed)
        let draws = (0..<resamples).map { _ in sampleCounts.map { $0.map { n in (0..<n).map { _ in rng.nextInt(below: n) } } } }
        let replicates = Parallel.map(resamples) { statistic(draws[$0]) }
        return estimates.indices.map { k in
            let values = replicates.map { $0[k] }.filter(\.isFinite).sorted()
            guard !values.isEmpty else { return Interval(estimate: estimates[k], low: .nan, high: .nan) }
            return Interval(estimate: estimates[k], low: percentile(values, 0.025), high: percentile(values, 0.975))
        }
    }

    /// The p-quantile of sorted values, interpolated linearly between order statistics (numpy's default).
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        let position = p * Double(sorted.count - 1), i = Int(position.rounded(.down))
        guard i + 1 < sorted.count else { return sorted[sorted.count - 1] }
        return sorted[i] + (position - Double(i)) * (sorted[i + 1] - sorted[i])
    }

    /// A variant against its baseline, seed by seed on the same samples, on the mean headline of
    /// each seed's tasks (Score_fine when they are its benchmarks): the mean over seeds of the
    /// difference (points, 100 × headline) and of Rel (%), with paired-bootstrap intervals.
    public static func paired(_ seeds: [[PairedTask]], seed: UInt64) -> (difference: Interval, relative: Interval) {
        let intervals = pairedBootstrap(sampleCounts: seeds.map { $0.map(\.variant.count) }, seed: seed) { draw in
            var difference = 0.0, relative = 0.0
            for (s, tasks) in seeds.enumerated() {
                var v = 0.0, b = 0.0
                for (k, t) in tasks.enumerated() {
                    v += t.task.headline(ofDraw: draw[s][k], terms: t.variant)
                    b += t.task.headline(ofDraw: draw[s][k], terms: t.baseline)
                }
                (v, b) = (v / Double(tasks.count), b / Double(tasks.count))
                difference += 100 * (v - b)
                relative += 100 * v / b
            }
            return [difference / Double(seeds.count), relative / Double(seeds.count)]
        }
        return (intervals[0], intervals[1])
    }
}

/// One benchmark's results of a variant and of its baseline on the same samples: each sample's
/// headline terms (`BenchmarkTask.headlineTerms`).
public struct PairedTask: Sendable {
    public let task: BenchmarkTask
    public let variant: [[Double]], baseline: [[Double]]
    public init(task: BenchmarkTask, variant: [[Double]], baseline: [[Double]]) { (self.task, self.variant, self.baseline) = (task, variant, baseline) }
}
