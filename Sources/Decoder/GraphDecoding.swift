import Kernels
import LayerGraph

/// One layer's key/value cache of one sequence: the tokens later tokens may attend to, with their
/// keys and values after RoPE.
final class KVCache {
    private(set) var tokens: [LayoutToken]
    private var k: [Float], v: [Float]
    let width: Int

    init(tokens: [LayoutToken], k: [Float], v: [Float], width: Int) {
        self.tokens = tokens; self.k = k; self.v = v; self.width = width
    }

    func append(_ token: LayoutToken, k newK: FloatPtr, v newV: FloatPtr) {
        tokens.append(token)
        k.append(contentsOf: UnsafeBufferPointer(start: newK, count: width))
        v.append(contentsOf: UnsafeBufferPointer(start: newV, count: width))
    }

    /// Whether a layer's cache keeps a token's key and value: the tokens decoded later may attend to it.
    static func keeps(_ token: LayoutToken, in node: LayerNode) -> Bool { node.cachesKeys(of: token.kind) }

    /// out = attention of the query rows over the cache under `mask`.
    func attend(q: FloatPtr, out: FloatPtr, mask: AttentionMask, layout: HeadLayout) {
        k.withUnsafeMutableBufferPointer { kp in
            v.withUnsafeMutableBufferPointer { vp in
                Attention.forward(q: q, k: kp.baseAddress!, v: vp.baseAddress!, out: out, probs: nil, mask: mask, layout: layout)
            }
        }
    }
}

/// Greedy decoding with a KV cache after the prefill of a batch of prompts: every step is one pass
/// of the executor (`GraphPass`) over the new tokens of all sequences still generating, each
/// attending over its own cache. Each layer's cache holds the keys and values (after RoPE) of
/// the tokens that later tokens may attend to; ProxyV's proxy entries are dropped after the
/// prefill, as the reference does, so decode steps and the cache size equal the baseline's.
/// Every new token is an `answer` token at its sequence's next position.
public final class GraphDecoder {
    public let model: GraphModel
    private let caches: [[KVCache]]          // [sequence][layer]
    private var nextPositions: [Int32]
    private var answerIndices: [Int]
    private let grid: Int
    /// The logits of each prompt's last token, which predict its first new token.
    public let prefillLogits: [[Float]]

    public init(prefill pass: GraphPass) {
        precondition(!pass.finalLayouts.isEmpty && pass.logits.count > 0, "run the prefill's forward() first")
        let model = pass.model, kw = model.config.headLayout.kvWidth, vocab = model.config.vocab
        self.model = model
        caches = pass.sequences.indices.map { s in
            model.graph.nodes.indices.map { l in
                let (tokens, k, v) = pass.keysAndValues(layer: l, sequence: s)
                let node = model.graph.nodes[l]
                let kept = tokens.indices.filter { KVCache.keeps(tokens[$0], in: node) }
                return KVCache(tokens: kept.map { tokens[$0] },
                               k: kept.flatMap { Array(UnsafeBufferPointer(start: k.data + $0 * kw, count: kw)) },
                               v: kept.flatMap { Array(UnsafeBufferPointer(start: v.data + $0 * kw, count: kw)) }, width: kw)
            }
        }
        var positions: [Int32] = [], logits: [[Float]] = []
        for (s, layout) in pass.finalLayouts.enumerated() {
            let last = layout.tokens.indices.max { layout.tokens[$0].position < layout.tokens[$1].position }!
            positions.append(layout.tokens[last].position + 1)
            logits.append(Array(UnsafeBufferPointer(start: pass.logits.data + (pass.logitOffsets[s] + last) * vocab, count: vocab)))
        }
        nextPositions = positions
        prefillLogits = logits
        answerIndices = pass.sequences.map(\.layout.answerLength)
        grid = pass.sequences[0].layout.grid
    }

    /// Key/value entries cached per layer, of one sequence.
    public func cacheEntries(sequence s: Int = 0) -> [Int] { caches[s].map(\.tokens.count) }

    /// Feeds the first sequence its next token by id; returns the logits that predict the one after it.
    public func step(token: Int32) -> [Float] { step(tokens: [token], sequences: [0])[0] }

    /// Feeds each of `sequences` its next token by id; returns each one's next logits.
    public func step(tokens: [Int32], sequences: [Int]) -> [[Float]] {
        let d = model.config.hidden, x = Tensor(shape: [tokens.count, d])
        Embedding.forward(ids: tokens, table: model.decoder.embedding.value.data, out: x.data, dim: d)
        return step(embeddings: x, sequences: sequences)
    }

    /// Feeds each of `sequences` its next token by its input embedding (a row of `embeddings`):
    /// one pass of the executor over the new tokens, each sequence attending over its cache.
    public func step(embeddings: Tensor, sequences: [Int]) -> [[Float]] {
        let d = model.config.hidden, vocab = model.config.vocab
        precondition(embeddings.shape == [sequences.count, d], "one embedding per stepped sequence")
        let inputs = sequences.enumerated().map { i, s in
            let token = LayoutToken(kind: .answer, index: answerIndices[s], position: nextPositions[s])
            let x = Tensor(shape: [1, d])
            x.data.update(from: embeddings.data + i * d, count: d)
            return SequenceInput(layout: TokenLayout(continuing: [token], grid: grid), inputs: x)
        }
        let pass = GraphPass(model: model, sequences: inputs, keepsForBackward: false, caches: sequences.map { caches[$0] })
        pass.forward()
        for s in sequences { nextPositions[s] += 1; answerIndices[s] += 1 }
        return sequences.indices.map { Array(UnsafeBufferPointer(start: pass.logits.data + $0 * vocab, count: vocab)) }
    }

    /// Greedy decoding of every sequence: up to `count` tokens each, a sequence stopping after
    /// `stop` if it comes; the sequences still generating step together.
    public func generate(count: Int, stop: Int32? = nil) -> [[Int32]] {
        var out = [[Int32]](repeating: [], count: caches.count), logits = prefillLogits
        var active = count > 0 ? Array(caches.indices) : []
        while !active.isEmpty {
            var next: [Int32] = []
            for s in active {
                let token = Int32(logits[s].indices.max { logits[s][$0] < logits[s][$1] }!)
                out[s].append(token)
                next.append(token)
            }
            let going = active.indices.filter { next[$0] != stop && out[active[$0]].count < count }
            active = going.map { active[$0] }
            guard !active.isEmpty else { break }
            for (s, l) in zip(active, step(tokens: going.map { next[$0] }, sequences: active)) { logits[s] = l }
        }
        return out
    }
}
