import Kernels

/// The shape of a Llama-style decoder, named as in Hugging Face `config.json`.
public struct LlamaConfig: Codable, Equatable, Sendable {
    public var hidden: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var ffn: Int
    public var vocab: Int
    public var ropeTheta: Float = 10000
    public var normEps: Float = 1e-5
    public var tiedEmbeddings = false

    public init(hidden: Int, layers: Int, heads: Int, kvHeads: Int, ffn: Int, vocab: Int,
                ropeTheta: Float = 10000, normEps: Float = 1e-5, tiedEmbeddings: Bool = false) {
        self.hidden = hidden; self.layers = layers; self.heads = heads; self.kvHeads = kvHeads
        self.ffn = ffn; self.vocab = vocab; self.ropeTheta = ropeTheta; self.normEps = normEps
        self.tiedEmbeddings = tiedEmbeddings
    }

    public var headDim: Int { hidden / heads }
    public var headLayout: HeadLayout { HeadLayout(heads: heads, kvHeads: kvHeads, headDim: headDim) }

    /// Problems with the shape, as sentences; empty when it is usable.
    public var problems: [String] {
        var p: [String] = []
        // Bounds far above any real model, so that counts and allocations cannot overflow.
        for (name, v, most) in [("hidden", hidden, 1 << 16), ("layers", layers, 1 << 10), ("heads", heads, 1 << 10), ("kv_heads", kvHeads, 1 << 10),
                                ("ffn", ffn, 1 << 18), ("vocab", vocab, 1 << 22)] where v <= 0 || v > most {
            p.append("\(name) must be 1 to \(most), got \(v)")
        }
        if heads > 0, hidden % heads != 0 { p.append("hidden \(hidden) is not a multiple of heads \(heads)") }
        if heads > 0, hidden % heads == 0, headDim % 2 != 0 { p.append("head size \(headDim) must be even for RoPE") }
        if kvHeads > 0, heads % kvHeads != 0 { p.append("heads \(heads) is not a multiple of kv_heads \(kvHeads)") }
        return p
    }

    /// Named shapes for small-scale work (the multimodal scale presets of the same names use
    /// them). `small` is also the training-throughput benchmark's model.
    public static let presets: [String: LlamaConfig] = [
        "tiny": LlamaConfig(hidden: 64, layers: 4, heads: 4, kvHeads: 2, ffn: 192, vocab: 64),
        "small": LlamaConfig(hidden: 128, layers: 8, heads: 4, kvHeads: 4, ffn: 256, vocab: 512),
        "medium": LlamaConfig(hidden: 384, layers: 12, heads: 6, kvHeads: 6, ffn: 1536, vocab: 512),
    ]
}

