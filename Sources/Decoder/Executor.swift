import Kernels

/// A batch of variable-length sequences. Sequences are packed one after another in memory (no
/// padding); attention never crosses a sequence boundary.
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

/// One forward (and optionally backward) pass of a `LlamaModel` over a batch. The pass owns
/// every activation its backward needs.
public final class DecoderPass {
    public let model: LlamaModel
    /// The batch; a new one of the same sequence lengths may be set to reuse the buffers.
    public var batch: TokenBatch {
        didSet {
            precondition(batch.inputs.map(\.count) == oldValue.inputs.map(\.count), "a pass is reused only for batches of the same shape")
            flatInputs = batch.inputs.flatMap { $0 }
            flatTargets = batch.targets.flatMap { $0 }
        }
    }
    public let keepsActivations: Bool
    /// [tokens, vocab] after `forward()`.
    public let logits: Tensor

    private let packing: SequencePacking
    private let rope: RotaryAngles
    private var flatInputs: [Int32], flatTargets: [Int32]
    /// The residual stream entering each layer, plus the final hidden state (two buffers,
    /// used alternately, when no backward will run).
    private let residual: [Tensor]
    private let activations: [LayerActivations]
    private let finalNormed, finalRstd, lse: Tensor
    /// The backward's working buffers, made on its first run and kept for reuse.
    private lazy var gradients = (logits: Tensor(shape: logits.shape), normed: Tensor(shape: finalNormed.shape),
                                  residual: Tensor(shape: finalNormed.shape),
                                  layer: LayerScratch(config: model.config, packing: packing))
    /// After `forward()`: the summed loss and the number of targets it sums over.
    public private(set) var lossSum = 0.0
    public private(set) var countedTargets = 0

    public init(model: LlamaModel, batch: TokenBatch, keepActivations: Bool = true) {
        let c = model.config
        self.model = model
        self.batch = batch
        keepsActivations = keepActivations
        let packing = SequencePacking(lengths: batch.inputs.map(\.count))
        self.packing = packing
        rope = Rope(headDim: c.headDim, theta: c.ropeTheta).angles(for: packing.positions)
        flatInputs = batch.inputs.flatMap { $0 }
        flatTargets = batch.targets.flatMap { $0 }
        let t = packing.tokens
        residual = (0..<(keepActivations ? c.layers + 1 : 2)).map { _ in Tensor(shape: [t, c.hidden]) }
        activations = (0..<(keepActivations ? c.layers : 1)).map { _ in
            LayerActivations(config: c, packing: packing, keepProbabilities: keepActivations)
        }
        finalNormed = Tensor(shape: [t, c.hidden]); finalRstd = Tensor(shape: [t]); lse = Tensor(shape: [t])
        logits = Tensor(shape: [t, c.vocab])
    }

    private func input(ofLayer l: Int) -> Tensor { keepsActivations ? residual[l] : residual[l % 2] }
    private var finalHidden: Tensor { input(ofLayer: model.config.layers) }

    /// Runs the model; returns the mean cross-entropy over the counted targets (0 if none).
    @discardableResult
    public func forward() -> Float {
        let c = model.config, t = packing.tokens, d = c.hidden
        Embedding.forward(ids: flatInputs, table: model.embedding.value.data, out: residual[0].data, dim: d)
        for (l, layer) in model.layers.enumerated() {
            layer.forward(x: input(ofLayer: l), out: input(ofLayer: l + 1), saving: activations[keepsActivations ? l : 0],
                          packing: packing, config: c, rope: rope)
        }
        RMSNorm.forward(x: finalHidden.data, weight: model.finalNorm.value.data, y: finalNormed.data, rstd: finalRstd.data,
                        rows: t, dim: d, eps: c.normEps)
        Linear.forward(x: finalNormed.data, w: model.head.value.data, y: logits.data, rows: t, inFeatures: d, outFeatures: c.vocab)
        (lossSum, countedTargets) = CrossEntropy.forward(logits: logits.data, targets: flatTargets, lse: lse.data, vocab: c.vocab)
        return countedTargets > 0 ? Float(lossSum / Double(countedTargets)) : 0
    }

    /// Accumulates the gradient of lossSum / `normalizer` into every parameter's `grad`. The
    /// normalizer defaults to this pass's own target count (the mean loss); a batch split over
    /// several passes gives each the count of the whole batch.
    public func backward(normalizer: Float? = nil) {
        precondition(keepsActivations, "this pass was built without activations for a backward")
        let normalizer = normalizer ?? Float(countedTargets)
        guard countedTargets > 0, normalizer > 0 else { return }
        let c = model.config, t = packing.tokens, d = c.hidden
        let (dLogits, dNormed, dResidual, scratch) = gradients
        dLogits.zero(); dNormed.zero(); dResidual.zero()
        CrossEntropy.backward(logits: logits.data, targets: flatTargets, lse: lse.data, dLogits: dLogits.data,
                              vocab: c.vocab, scale: 1 / normalizer)
        Linear.backward(dy: dLogits.data, x: finalNormed.data, w: model.head.value.data, dx: dNormed.data,
                        dw: model.head.grad.data, rows: t, inFeatures: d, outFeatures: c.vocab)
        // The gradient along the residual stream, carried back through the layers in place.
        RMSNorm.backward(dy: dNormed.data, x: finalHidden.data, weight: model.finalNorm.value.data,
                         rstd: finalRstd.data, dx: dResidual.data, dWeight: model.finalNorm.grad.data, rows: t, dim: d)
        for (l, layer) in model.layers.enumerated().reversed() {
            layer.backward(dResidual: dResidual, x: residual[l], saved: activations[l], scratch: scratch,
                           packing: packing, config: c, rope: rope)
        }
        Embedding.backward(ids: flatInputs, dOut: dResidual.data, dTable: model.embedding.grad.data, dim: d)
    }
}
