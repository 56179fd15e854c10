import Kernels
import LayerGraph

extension LlamaConfig {
    /// FLOPs (2 × multiply-accumulates) of the matrix products of one forward over packed
    /// sequences, as `DecoderPass` runs them: Q/K/V/O projections, attention scores and weighted
    /// sums over the (query, key) pairs the kernel computes (`AttentionMask.computedPairs` of each
    /// sequence's causal mask), SwiGLU FFN and LM head.
    public func forwardFLOPs(sequenceLengths: [Int]) -> Int {
        let t = sequenceLengths.reduce(0, +), kv = kvHeads * headDim
        let projections = 2 * t * hidden * (2 * hidden + 2 * kv)
        let attention = sequenceLengths.reduce(0) { $0 + 4 * AttentionMask.causal($1).computedPairs * hidden }
        let ffn = 6 * t * hidden * self.ffn
        return layers * (projections + attention + ffn) + 2 * t * hidden * vocab
    }

    /// A training step's products: the backward of each product costs two of its forwards
    /// (input gradient and weight gradient; for attention, four products against two).
    public func trainingStepFLOPs(sequenceLengths: [Int]) -> Int { 3 * forwardFLOPs(sequenceLengths: sequenceLengths) }
}
