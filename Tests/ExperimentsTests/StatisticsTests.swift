import Benchmarks
@testable import Experiments
import XCTest

/// The reports' statistics against cases computed by hand.
final class StatisticsTests: XCTestCase {
    /// Three seeds' scores 30, 32, 34: mean 32, s = 2, t(0.975, 2) = 4.3027, so 32 ± 4.3027·2/√3.
    func testStudentTIntervalOverSeeds() throws {
        let i = try XCTUnwrap(Statistics.tInterval([30, 32, 34]))
        XCTAssertEqual(i.estimate, 32, accuracy: 1e-12)
        XCTAssertEqual(i.low, 32 - 4.968_33, accuracy: 1e-4)
        XCTAssertEqual(i.high, 32 + 4.968_33, accuracy: 1e-4)
        XCTAssertNil(Statistics.tInterval([30]), "one seed has no spread")
        // The quantiles: table values, and the expansion beyond 30 degrees of freedom.
        XCTAssertEqual(Statistics.t975(df: 1), 12.7062, accuracy: 1e-4)
        XCTAssertEqual(Statistics.t975(df: 30), 2.0423, accuracy: 1e-4)
        XCTAssertEqual(Statistics.t975(df: 40), 2.0211, accuracy: 1e-4)
        XCTAssertEqual(Statistics.t975(df: 120), 1.9799, accuracy: 1e-4)
    }

    /// One seed, two samples; the variant scores [1, 0], the baseline [0, 0]. A redraw's
    /// difference is 0, 50 or 100 points with chances 1/4, 1/2, 1/4, so its 2.5th and 97.5th
    /// percentiles are 0 and 100 and the estimate (the samples as evaluated) is 50.
    func testPairedBootstrapByHand() {
        let (variant, baseline) = ([1.0, 0.0], [0.0, 0.0])
        let i = Statistics.pairedBootstrap(sampleCounts: [[2]], seed: 1) { draw in
            let d = draw[0][0]
            return [100 * d.reduce(0) { $0 + variant[$1] - baseline[$1] } / Double(d.count)]
        }
        XCTAssertEqual(i, [Interval(estimate: 50, low: 0, high: 100)])
    }

    /// Pairing cancels what the two runs share: on 400 samples where the variant is right
    /// exactly where the baseline is, but for 20 it gets wrong, the difference is −5 points and
    /// its interval is that of 20 in 400 (binomial, about ±2.1), not of two independent
    /// accuracies near 50 % (about ±6.9).
    func testPairingCancelsTheSharedNoise() {
        let baseline = (0..<400).map { Double($0 % 2) }
        let variant = baseline.enumerated().map { $0.offset < 40 && $0.element == 1 ? 0.0 : $0.element }
        let i = Statistics.pairedBootstrap(sampleCounts: [[400]], seed: 7) { draw in
            [100 * draw[0][0].reduce(0) { $0 + variant[$1] - baseline[$1] } / 400]
        }[0]
        XCTAssertEqual(i.estimate, -5, accuracy: 1e-9)
        let half = 1.96 * 100 * (0.05 * 0.95 / 400).squareRoot()
        XCTAssertEqual(i.high - i.low, 2 * half, accuracy: 0.25 * 2 * half)
    }

    /// Every task's headline terms, summed over all samples, give the headline its evaluator gives.
    func testHeadlineTermsSumToTheHeadline() {
        for task in BenchmarkTask.all {
            let samples = (0..<12).map { task.sample($0, split: .val, side: 48) }
            // Right answers for some, another sample's answer for the rest.
            let predictions = samples.indices.map { $0 % 3 == 0 ? samples[$0].references[0] : samples[($0 + 1) % 12].references[0] }
            let terms = task.headlineTerms(predictions: predictions, samples: samples)
            XCTAssertEqual(task.headline(ofDraw: Array(samples.indices), terms: terms),
                           task.headline(task.score(predictions: predictions, samples: samples)), accuracy: 1e-12, task.name)
            let draw = [0, 0, 3, 5, 5, 5, 7]
            XCTAssertEqual(task.headline(ofDraw: draw, terms: terms),
                           task.headline(task.score(predictions: draw.map { predictions[$0] }, samples: draw.map { samples[$0] })), accuracy: 1e-12, task.name)
        }
    }

    /// The profile's earliest start layer: the first from which Rel's lower bound stays at or
    /// above the target for every later start; a dip later on moves it past the dip, and an
    /// undefined Rel (NaN) holds nothing.
    func testEarliestStartKeepsTheTargetFromThereOn() throws {
        func points(_ lows: [Double]) -> [RedundancyProfile.Point] {
            lows.enumerated().map { l, low in
                RedundancyProfile.Point(family: "skip-vattn", start: l, scoreFine: 0.3, difference: Interval(estimate: 0, low: 0, high: 0),
                                        relative: Interval(estimate: low + 1, low: low, high: low + 2), flopsReduced: Double(8 - l))
            }
        }
        XCTAssertEqual(RedundancyProfile.earliestStart(points([90, 99.5, 98, 99.2, 99.9]), targetRel: 0.99)?.start, 3)
        XCTAssertEqual(RedundancyProfile.earliestStart(points([99, 99.5, 99.2]), targetRel: 0.99)?.start, 0, "99 % holds a target of 0.99")
        XCTAssertNil(RedundancyProfile.earliestStart(points([99.5, 99.5, 97]), targetRel: 0.99), "the last start fails")
        XCTAssertEqual(RedundancyProfile.earliestStart(points([99.5, .nan, 99.5]), targetRel: 0.99)?.start, 2)
    }
}
