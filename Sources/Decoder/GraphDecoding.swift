import Kernels
import LayerGraph

/// Greedy decoding with a KV cache after a prefill. Each layer's cache holds the keys and values
/// (after RoPE) of the tokens that later tokens may attend to; ProxyV's proxy entries are dropped
/// after the prefill, as the reference does, so decode steps and the cache size equal the
/// baseline's. Every new token is an `answer` token at the next position.
public final class GraphDecoder {
    public let model: GraphModel
    private var caches: [(tokens: [LayoutToken], k: [Float], v: [Float])]
    private var nextPosition: Int32
    private var answerIndex: Int
    /// The logits of the prefill's last token, which predict the first new token.
    public let prefillLogits: [Float]

    public init(prefill pass: GraphPass) {
        precondition(!pass.finalLayout.tokens.isEmpty, "run the prefill's forward() first")
        let model = pass.model
        self.model = model
        caches = model.graph.nodes.indices.map { l in
            let (tokens, k, v) = pass.keysAndValues(layer: l)
            let node = model.graph.nodes[l]
            let kept = tokens.indices.filter { node.keys.contains(tokens[$0].kind) && tokens[$0].kind != .proxy }
            let kw = pass.model.config.headLayout.kvWidth
            return (kept.map { tokens[$0] },
                    kept.flatMap { Array(UnsafeBufferPointer(start: k.data + $0 * kw, count: kw)) },
                    kept.flatMap { Array(UnsafeBufferPointer(start: v.data + $0 * kw, count: kw)) })
        }
        let last = pass.finalLayout.tokens.indices.max { pass.finalLayout.tokens[$0].position < pass.finalLayout.tokens[$1].position }!
        nextPosition = pass.finalLayout.tokens[last].position + 1
        answerIndex = pass.layout.answerLength
        let vocab = model.config.vocab
        prefillLogits = Array(UnsafeBufferPointer(start: pass.logits.data + last * vocab, count: vocab))
    }

    /// Key/value entries cached per layer.
    public var cacheEntries: [Int] { caches.map(\.tokens.count) }

    /// Feeds the next token by its id; returns the logits that predict the one after it.
    public func step(token: Int32) -> [Float] {
        let d = model.config.hidden, x = Tensor(shape: [1, d])
        Embedding.forward(ids: [token], table: model.decoder.embedding.value.data, out: x.data, dim: d)
        return step(embedding: x)
    }

    /// Feeds the next token by its input embedding [1, hidden].
    public func step(embedding: Tensor) -> [Float] {
        let c = model.config, hl = c.headLayout
        let token = LayoutToken(kind: .answer, index: answerIndex, position: nextPosition)
        let angles = Rope(headDim: c.headDim, theta: c.ropeTheta).angles(for: [token.position])
        var x = embedding
        for (l, layer) in model.decoder.layers.enumerated() {
            let node = model.graph.nodes[l]
            precondition(node.queries.contains(.answer), "text tokens are queries in every variant")
            let (normed, _) = x.rmsNorm(layer.attentionNorm, eps: c.normEps)
            let q = normed.linear(layer.query), k = normed.linear(layer.key), v = normed.linear(layer.value)
            angles.rotate(q.data, heads: c.heads)
            angles.rotate(k.data, heads: c.kvHeads)
            if node.keys.contains(.answer) {
                caches[l].tokens.append(token)
                caches[l].k += k.array
                caches[l].v += v.array
            }
            let cache = caches[l]
            let mask = node.attentionMask(queries: [token], keys: cache.tokens)
            let attended = Tensor(shape: [1, hl.queryWidth])
            var keys = cache.k, values = cache.v
            keys.withUnsafeMutableBufferPointer { kp in
                values.withUnsafeMutableBufferPointer { vp in
                    Attention.forward(q: q.data, k: kp.baseAddress!, v: vp.baseAddress!, out: attended.data, probs: nil,
                                      mask: mask, layout: hl)
                }
            }
            let mid = x + attended.linear(layer.output)
            x = mid
            if node.ffn.contains(.answer) {
                let (n2, _) = mid.rmsNorm(layer.ffnNorm, eps: c.normEps)
                let y = Tensor(shape: [1, c.hidden]), saved = (Tensor(shape: [1, c.ffn]), Tensor(shape: [1, c.ffn]), Tensor(shape: [1, c.ffn]))
                withExtendedLifetime(saved) {
                    SwiGLU.forward(x: n2.data, weights: layer.ffnWeights, y: y.data,
                                   saved: .init(gate: saved.0.data, up: saved.1.data, hidden: saved.2.data), rows: 1, dim: c.hidden, ffn: c.ffn)
                }
                x = mid + y
            }
        }
        nextPosition += 1
        answerIndex += 1
        let (normed, _) = x.rmsNorm(model.decoder.finalNorm, eps: c.normEps)
        return normed.linear(model.decoder.head).array
    }

    /// Greedy decoding: up to `count` tokens, stopping after `stop` if it comes.
    public func generate(count: Int, stop: Int32? = nil) -> [Int32] {
        var out: [Int32] = [], logits = prefillLogits
        for _ in 0..<count {
            let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            out.append(next)
            if next == stop { break }
            logits = step(token: next)
        }
        return out
    }
}
