import Kernels
import LayerGraph

/// A batch of variable-length token sequences. Sequences are packed one after another in memory
/// (no padding); attention never crosses a sequence boundary.
public struct TokenBatch: Sendable {
    public var inputs: [[Int32]]
    /// Next-token targets aligned with `inputs`; a negative target contributes no loss.
    public var targets: [[Int32]]

    public init(inputs: [[Int32]], targets: [[Int32]]) {
        precondition(inputs.map(\.count) == targets.map(\.count), "inputs and targets differ in length")
        self.inputs = inputs
        self.targets = targets
    }

    public var tokenCount: Int { inputs.reduce(0) { $0 + $1.count } }
}

/// A batch of token sequences through a decoder under the baseline graph, by the one executor
/// (`GraphPass`): each sequence is a text-only layout whose inputs are its tokens' embeddings,
/// and the backward returns the input gradient to the embedding table.
public final class TextPass {
    public let model: LlamaModel
    public let pass: GraphPass
    private let ids: [Int32]

    public init(model: LlamaModel, batch: TokenBatch, keepsForBackward: Bool = true) {
        let d = model.config.hidden
        self.model = model
        ids = batch.inputs.flatMap { $0 }
        let sequences = zip(batch.inputs, batch.targets).map { input, target in
            let layout = TokenLayout(grid: 1, crops: 0, system: input.count, question: 0)
            let x = Tensor(shape: [input.count, d])
            Embedding.forward(ids: input, table: model.embedding.value.data, out: x.data, dim: d)
            let targets = Dictionary(uniqueKeysWithValues: layout.tokens.indices.filter { target[$0] >= 0 }.map { (layout.tokens[$0], target[$0]) })
            return SequenceInput(layout: layout, inputs: x, targets: targets)
        }
        pass = GraphPass(model: GraphModel(baseline: model), sequences: sequences, keepsForBackward: keepsForBackward)
    }

    /// [tokens, vocab] after `forward()`, sequence after sequence.
    public var logits: Tensor { pass.logits }
    public var lossSum: Double { pass.lossSum }
    public var countedTargets: Int { pass.countedTargets }

    /// Runs the model; returns the mean cross-entropy over the counted targets (0 if none).
    @discardableResult
    public func forward() -> Float { pass.forward() }

    /// Accumulates the gradient of lossSum / `normalizer` (default: this batch's target count)
    /// into every parameter's `grad`, the embedding table's included.
    public func backward(normalizer: Float? = nil) {
        pass.backward(normalizer: normalizer)
        Embedding.backward(ids: ids, dOut: pass.inputGradient.data, dTable: model.embedding.grad.data, dim: model.config.hidden)
    }
}
