import Accounting
import Decoder
import Foundation
import LayerGraph
import Training

/// Everything one run leaves in the store.
public struct RunRecord {
    public var id: String
    /// The resolved configuration as JSON (a `RunSpec`, or an import's description).
    public var config: String
    /// The decoder: a scale preset, or a paper-scale model for imported results.
    public var model: String
    public var variant: String, mode: String, seed: UInt64
    public var baselineID: String?
    /// "squeeze" or where imported results came from.
    public var source = "squeeze"
    public var started = Date(), finished = Date()
    public var benchmarks: [BenchmarkRecord] = []
    public var accounting: AccountingRecord
    /// Wall-clock seconds: train, evaluate, mean prefill and mean whole answer per sample (both
    /// while other work shares the cores); and one prompt's prefill timed in turn with its
    /// baseline graph's, with the median, least and greatest ratio of the pairs
    /// (`RunExecutor.prefillTiming`).
    public var timing: [String: Double] = [:]
    /// Per optimisation step: step, stage, loss, grad_norm, learning_rate and each task's loss.
    public var curves: [String: [Double]] = [:]

    public init(id: String, config: String, model: String, variant: String, mode: String, seed: UInt64, baselineID: String? = nil,
                accounting: AccountingRecord) {
        self.id = id; self.config = config; self.model = model; self.variant = variant; self.mode = mode; self.seed = seed
        self.baselineID = baselineID; self.accounting = accounting
    }

    public var scoreFine: Double {
        let fine = benchmarks.filter(\.fineGrained)
        return fine.isEmpty ? 0 : fine.reduce(0) { $0 + $1.headline } / Double(fine.count)
    }

    /// Score_fine's standard error, as `Evaluation.scoreFineStandardError` gives it; nil unless
    /// every fine-grained benchmark has one.
    public var scoreFineStandardError: Double? {
        let fine = benchmarks.filter(\.fineGrained), errors = fine.compactMap(\.standardError)
        guard !fine.isEmpty, errors.count == fine.count else { return nil }
        return Evaluation.meanStandardError(errors)
    }
}

/// One benchmark's results in a run.
public struct BenchmarkRecord {
    public var name: String
    public var fineGrained: Bool
    public var headline: Double
    public var scores: [String: Double]
    /// The headline's standard error over the samples (`Evaluation.standardError`); nil for
    /// imported results, which do not carry one.
    public var standardError: Double?
    public var perSampleMetric = "", perSample: [Double] = [], predictions: [String] = [], prefillSeconds: [Double] = []

    public init(name: String, fineGrained: Bool, headline: Double, scores: [String: Double]) {
        self.name = name; self.fineGrained = fineGrained; self.headline = headline; self.scores = scores
    }

    public init(_ e: Evaluation) {
        self.init(name: e.task, fineGrained: e.fineGrained, headline: e.headline, scores: e.scores)
        (perSampleMetric, perSample, predictions, prefillSeconds) = (e.perSample.metric, e.perSample.values, e.predictions, e.prefillSeconds)
        standardError = e.standardError
    }
}

/// Prefill counts of a run's model for one token layout, in the paper's convention (dense
/// attention pairs, decoder layers only), beside the baseline's and the executed count.
public struct AccountingRecord {
    public static let convention = CountingConvention.paper
    public var operations: [String]
    /// [layers][operations] multiply-accumulates.
    public var perLayerMACs: [[Double]]
    public var flops: Double, macs: Double, baselineFlops: Double, executedFlops: Double
    public var parameters: Double, kvCacheBytes: Double
    public var reducedPercent: Double { baselineFlops > 0 ? 100 * (1 - flops / baselineFlops) : 0 }

    /// `features`: the vision encoder's width (only kv-only's count needs it).
    public init(config: LlamaConfig, spec: VariantSpec, layout: TokenLayout, features: Int = 0, kvBytesPerValue: Int = 2) throws {
        let graph = try LayerGraph(spec: spec, layers: config.layers, hidden: config.hidden, grid: layout.grid, features: features)
        let accountant = Accountant(config: config, graph: graph, layout: layout)
        let baseline = Accountant(config: config, graph: try LayerGraph(spec: .baseline, layers: config.layers, hidden: config.hidden, grid: layout.grid), layout: layout)
        let layers = accountant.prefill(convention: AccountingRecord.convention)
        let operations = Array(Set(layers.flatMap { $0.operations.map(\.name) })).sorted()
        self.operations = operations
        perLayerMACs = layers.map { layer in
            operations.map { name in Double(layer.operations.filter { $0.name == name }.reduce(0) { $0 + $1.macs }) }
        }
        macs = Double(layers.reduce(0) { $0 + $1.macs })
        flops = 2 * macs
        baselineFlops = Double(baseline.prefill(convention: AccountingRecord.convention).reduce(0) { $0 + $1.flops })
        executedFlops = Double(accountant.prefill(convention: .executed).reduce(0) { $0 + $1.flops })
        parameters = Double(accountant.parameters.reduce(0) { $0 + $1.count })
        kvCacheBytes = Double(accountant.kvCacheBytes(bytesPerValue: kvBytesPerValue))
    }
}
