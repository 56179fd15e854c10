import Kernels

/// Where each sequence of a packed batch lives: its first row, its position ids and its mask.
public struct SequencePacking: Sendable {
    public let offsets: [Int]          // first row of each sequence, plus the total at the end
    public let positions: [Int32]      // position id of every row
    public let masks: [AttentionMask]  // causal, one per sequence

    public init(lengths: [Int]) {
        offsets = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        positions = lengths.flatMap { n in (0..<n).map(Int32.init) }
        masks = lengths.map { AttentionMask.causal($0) }
    }

    public var tokens: Int { offsets.last! }
    /// Attention weights of all sequences for one layer: Σ heads·len².
    func probabilityCount(heads: Int) -> Int { masks.reduce(0) { $0 + heads * $1.queries * $1.keys } }
}

/// The buffers of one decoder layer's forward, which its backward reads.
public final class LayerActivations {
    let norm1, rstd1, q, k, v, attended, mid, norm2, rstd2: Tensor
    let gate, up, hidden: Tensor
    /// Attention weights [Σ heads·len²], or nil when the forward need not keep them.
    let probs: Tensor?

    public init(config c: LlamaConfig, packing: SequencePacking, keepProbabilities: Bool) {
        let t = packing.tokens, d = c.hidden, kv = c.kvHeads * c.headDim
        norm1 = Tensor(shape: [t, d]); rstd1 = Tensor(shape: [t])
        q = Tensor(shape: [t, d]); k = Tensor(shape: [t, kv]); v = Tensor(shape: [t, kv])
        attended = Tensor(shape: [t, d]); mid = Tensor(shape: [t, d])
        norm2 = Tensor(shape: [t, d]); rstd2 = Tensor(shape: [t])
        gate = Tensor(shape: [t, c.ffn]); up = Tensor(shape: [t, c.ffn]); hidden = Tensor(shape: [t, c.ffn])
        probs = keepProbabilities ? Tensor(shape: [packing.probabilityCount(heads: c.heads)]) : nil
    }

    var ffnSaved: SwiGLU.Saved { .init(gate: gate.data, up: up.data, hidden: hidden.data) }
}

/// Gradient buffers a layer's backward works in, shared by all layers of a pass.
public final class LayerScratch {
    let dNormed, dq, dk, dv, dAttended: Tensor
    let ffn: (Tensor, Tensor)

    public init(config c: LlamaConfig, packing: SequencePacking) {
        let t = packing.tokens, d = c.hidden, kv = c.kvHeads * c.headDim
        dNormed = Tensor(shape: [t, d]); dq = Tensor(shape: [t, d])
        dk = Tensor(shape: [t, kv]); dv = Tensor(shape: [t, kv]); dAttended = Tensor(shape: [t, d])
        ffn = (Tensor(shape: [t, c.ffn]), Tensor(shape: [t, c.ffn]))
    }
}

extension LlamaLayer {
    /// out = mid + FFN(norm2(mid)), mid = x + O·attention(rope(Q·norm1(x)), rope(K·norm1(x)), V·norm1(x)).
    public func forward(x: Tensor, out: Tensor, saving a: LayerActivations, packing p: SequencePacking,
                        config c: LlamaConfig, rope: RotaryAngles) {
        let t = p.tokens, d = c.hidden, kv = c.kvHeads * c.headDim
        RMSNorm.forward(x: x.data, weight: attentionNorm.value.data, y: a.norm1.data, rstd: a.rstd1.data,
                        rows: t, dim: d, eps: c.normEps)
        Linear.forward(x: a.norm1.data, w: query.value.data, y: a.q.data, rows: t, inFeatures: d, outFeatures: d)
        Linear.forward(x: a.norm1.data, w: key.value.data, y: a.k.data, rows: t, inFeatures: d, outFeatures: kv)
        Linear.forward(x: a.norm1.data, w: value.value.data, y: a.v.data, rows: t, inFeatures: d, outFeatures: kv)
        rope.rotate(a.q.data, heads: c.heads)
        rope.rotate(a.k.data, heads: c.kvHeads)
        var probOffset = 0
        for (s, mask) in p.masks.enumerated() {
            let o = p.offsets[s]
            Attention.forward(q: a.q.data + o * d, k: a.k.data + o * kv, v: a.v.data + o * kv,
                              out: a.attended.data + o * d, probs: a.probs.map { $0.data + probOffset },
                              mask: mask, layout: c.headLayout)
            probOffset += c.heads * mask.queries * mask.keys
        }
        Linear.forward(x: a.attended.data, w: output.value.data, y: a.mid.data, rows: t, inFeatures: d, outFeatures: d)
        addInPlace(a.mid.data, x.data, count: t * d)
        RMSNorm.forward(x: a.mid.data, weight: ffnNorm.value.data, y: a.norm2.data, rstd: a.rstd2.data,
                        rows: t, dim: d, eps: c.normEps)
        SwiGLU.forward(x: a.norm2.data, weights: ffnWeights, y: out.data, saved: a.ffnSaved, rows: t, dim: d, ffn: c.ffn)
        addInPlace(out.data, a.mid.data, count: t * d)
    }

    /// Turns dResidual (the gradient at the layer's output) into the gradient at its input, in
    /// place, and accumulates the layer's weight gradients.
    public func backward(dResidual: Tensor, x: Tensor, saved a: LayerActivations, scratch s: LayerScratch,
                         packing p: SequencePacking, config c: LlamaConfig, rope: RotaryAngles) {
        guard let probs = a.probs else { preconditionFailure("the forward did not keep attention weights") }
        let t = p.tokens, d = c.hidden, kv = c.kvHeads * c.headDim
        s.dNormed.zero()
        SwiGLU.backward(dy: dResidual.data, x: a.norm2.data, weights: ffnWeights, saved: a.ffnSaved,
                        dx: s.dNormed.data, dGate: gate.grad.data, dUp: up.grad.data, dDown: down.grad.data,
                        scratch: (s.ffn.0.data, s.ffn.1.data), rows: t, dim: d, ffn: c.ffn)
        RMSNorm.backward(dy: s.dNormed.data, x: a.mid.data, weight: ffnNorm.value.data, rstd: a.rstd2.data,
                         dx: dResidual.data, dWeight: ffnNorm.grad.data, rows: t, dim: d)
        s.dAttended.zero()
        Linear.backward(dy: dResidual.data, x: a.attended.data, w: output.value.data, dx: s.dAttended.data,
                        dw: output.grad.data, rows: t, inFeatures: d, outFeatures: d)
        s.dq.zero(); s.dk.zero(); s.dv.zero()
        var probOffset = 0
        for (i, mask) in p.masks.enumerated() {
            let o = p.offsets[i]
            Attention.backward(dOut: s.dAttended.data + o * d, q: a.q.data + o * d, k: a.k.data + o * kv,
                               v: a.v.data + o * kv, probs: probs.data + probOffset,
                               dq: s.dq.data + o * d, dk: s.dk.data + o * kv, dv: s.dv.data + o * kv,
                               mask: mask, layout: c.headLayout)
            probOffset += c.heads * mask.queries * mask.keys
        }
        rope.rotateBack(s.dq.data, heads: c.heads)
        rope.rotateBack(s.dk.data, heads: c.kvHeads)
        s.dNormed.zero()
        Linear.backward(dy: s.dq.data, x: a.norm1.data, w: query.value.data, dx: s.dNormed.data,
                        dw: query.grad.data, rows: t, inFeatures: d, outFeatures: d)
        Linear.backward(dy: s.dk.data, x: a.norm1.data, w: key.value.data, dx: s.dNormed.data,
                        dw: key.grad.data, rows: t, inFeatures: d, outFeatures: kv)
        Linear.backward(dy: s.dv.data, x: a.norm1.data, w: value.value.data, dx: s.dNormed.data,
                        dw: value.grad.data, rows: t, inFeatures: d, outFeatures: kv)
        RMSNorm.backward(dy: s.dNormed.data, x: x.data, weight: attentionNorm.value.data, rstd: a.rstd1.data,
                         dx: dResidual.data, dWeight: attentionNorm.grad.data, rows: t, dim: d)
    }
}

@inline(__always) func addInPlace(_ y: FloatPtr, _ x: FloatPtr, count: Int) {
    for i in 0..<count { y[i] += x[i] }
}
