import Kernels
import LayerGraph

/// The weights of one pre-norm decoder layer: attention and SwiGLU FFN.
public final class LlamaLayer {
    public let attentionNorm, query, key, value, output: Parameter
    public let ffnNorm, gate, up, down: Parameter

    init(index i: Int, config c: LlamaConfig, make: (String, [Int], ParameterInit) -> Parameter) {
        let p = "model.layers.\(i)."
        let d = c.hidden, kv = c.kvHeads * c.headDim
        attentionNorm = make(p + "input_layernorm.weight", [d], .ones)
        query = make(p + "self_attn.q_proj.weight", [d, d], .normal)
        key = make(p + "self_attn.k_proj.weight", [kv, d], .normal)
        value = make(p + "self_attn.v_proj.weight", [kv, d], .normal)
        output = make(p + "self_attn.o_proj.weight", [d, d], .normal)
        ffnNorm = make(p + "post_attention_layernorm.weight", [d], .ones)
        gate = make(p + "mlp.gate_proj.weight", [c.ffn, d], .normal)
        up = make(p + "mlp.up_proj.weight", [c.ffn, d], .normal)
        down = make(p + "mlp.down_proj.weight", [d, c.ffn], .normal)
    }

    public var parameters: [Parameter] { [attentionNorm, query, key, value, output, ffnNorm, gate, up, down] }
    var ffnWeights: SwiGLU.Weights { .init(gate: gate.value.data, up: up.value.data, down: down.value.data) }
}

enum ParameterInit {
    case ones, normal

    /// Fresh weights: matrices ~ N(0, 0.02²), norm gains 1.
    func parameter(_ name: String, _ shape: [Int], rng: inout SeededGenerator) -> Parameter {
        switch self {
        case .ones: return Parameter(name: name, value: Tensor(shape: shape, values: .init(repeating: 1, count: shape.reduce(1, *))))
        case .normal: return Parameter(name: name, value: Tensor(shape: shape, std: 0.02, rng: &rng))
        }
    }
}

extension LlamaLayer {
    /// One layer with fresh weights, for work at real shapes without a whole model (benchmarks).
    public convenience init(index: Int, config: LlamaConfig, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        self.init(index: index, config: config) { $2.parameter($0, $1, rng: &rng) }
    }
}

/// A Llama-style decoder: token embedding, pre-norm layers, final RMSNorm, LM head (or tied
/// to the embedding). Parameter names are Hugging Face's, so checkpoints interoperate.
public final class LlamaModel {
    public let config: LlamaConfig
    public let embedding: Parameter
    public let layers: [LlamaLayer]
    public let finalNorm: Parameter
    /// nil when the head is tied to the embedding.
    public let lmHead: Parameter?

    /// Fresh weights: matrices ~ N(0, 0.02²), norm gains 1.
    public convenience init(config: LlamaConfig, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        self.init(config: config) { $2.parameter($0, $1, rng: &rng) }
    }

    /// Weights from named tensors (a checkpoint). Every expected name must be present with its shape.
    public convenience init(config: LlamaConfig, tensors: [String: Tensor]) throws {
        var missing: [String] = [], wrong: [String] = []
        self.init(config: config) { name, shape, _ in
            guard let t = tensors[name] else { missing.append(name); return Parameter(name: name, value: Tensor(shape: shape)) }
            if t.shape != shape { wrong.append("\(name) has shape \(t.shape), expected \(shape)") }
            return Parameter(name: name, value: t)
        }
        if !missing.isEmpty || !wrong.isEmpty {
            throw ModelError.tensorsDoNotFit(missing: missing, wrongShape: wrong)
        }
    }

    init(config c: LlamaConfig, make: (String, [Int], ParameterInit) -> Parameter) {
        precondition(c.problems.isEmpty, c.problems.joined(separator: "; "))
        config = c
        embedding = make("model.embed_tokens.weight", [c.vocab, c.hidden], .normal)
        layers = (0..<c.layers).map { LlamaLayer(index: $0, config: c, make: make) }
        finalNorm = make("model.norm.weight", [c.hidden], .ones)
        lmHead = c.tiedEmbeddings ? nil : make("lm_head.weight", [c.vocab, c.hidden], .normal)
    }

    public var parameters: [Parameter] {
        [embedding] + layers.flatMap(\.parameters) + [finalNorm] + (lmHead.map { [$0] } ?? [])
    }

    /// The matrix that maps hidden states to logits.
    public var head: Parameter { lmHead ?? embedding }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    public func zeroGradients() { for p in parameters { p.grad.zero() } }

    /// A model that shares these weights but has gradients of its own, so several passes can
    /// run backwards at once (data parallelism); their gradients are summed afterwards.
    public func replica() -> LlamaModel {
        let byName = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0) })
        return LlamaModel(config: config) { name, _, _ in
            let original = byName[name]!
            return Parameter(name: name, value: original.value, group: original.group)
        }
    }
}

public enum ModelError: Error, CustomStringConvertible {
    case tensorsDoNotFit(missing: [String], wrongShape: [String])

    public var description: String {
        switch self {
        case let .tensorsDoNotFit(missing, wrong):
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing tensors: " + missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? " and \(missing.count - 5) more" : "")) }
            parts += wrong.prefix(5)
            return "checkpoint does not fit the model: " + parts.joined(separator: "; ")
        }
    }
}
