import Foundation

/// Wall-clock times of repeated runs.
public struct Timing: Codable, Sendable {
    public let median: Double, min: Double, max: Double, reps: Int

    public init(reps: Int, warmup: Int = 1, _ body: () -> Void) {
        for _ in 0..<warmup { body() }
        self.init(times: (0..<Swift.max(1, reps)).map { _ in seconds(body) })
    }

    public init(times: [Double]) {
        let sorted = times.sorted()
        median = sorted[sorted.count / 2]; min = sorted.first!; max = sorted.last!; reps = sorted.count
    }
}

public func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// A piece of work and its yardstick timed in turn, A B A B …, after a warm-up of each: the
/// machine's drift (±30 % within minutes) is shared by the two runs of a pair, so the median of
/// the pairs' ratios is what to quote. The yardstick reports its own seconds.
public struct PairedTiming: Sendable {
    public let work: Timing, yardstick: Timing
    /// Each pair's yardstick seconds / work seconds: their median is the ratio to quote, their
    /// range its spread.
    public let ratios: Timing
    public var ratio: Double { ratios.median }

    public init(reps: Int, work: () -> Void, yardstick: () -> Double) {
        work(); _ = yardstick()
        let pairs = (0..<Swift.max(1, reps)).map { _ in (seconds(work), yardstick()) }
        self.work = Timing(times: pairs.map(\.0))
        self.yardstick = Timing(times: pairs.map(\.1))
        ratios = Timing(times: pairs.map { $0.1 / $0.0 })
    }
}
