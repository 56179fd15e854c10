import Decoder
import Foundation
import Kernels

/// Model shapes by name: the small presets Squeeze trains, and the six LLMs of the paper
/// (from their public configs; `Resources/paper/model_presets.csv`).
public enum ModelPresets {
    public static let paper: [String: LlamaConfig] = [
        "vicuna-7b": LlamaConfig(hidden: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, vocab: 32000),
        "vicuna-13b": LlamaConfig(hidden: 5120, layers: 40, heads: 40, kvHeads: 40, ffn: 13824, vocab: 32000),
        "llama3-8b": LlamaConfig(hidden: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128256, ropeTheta: 500000),
        "qwen2-7b": LlamaConfig(hidden: 3584, layers: 28, heads: 28, kvHeads: 4, ffn: 18944, vocab: 152064, ropeTheta: 1000000, normEps: 1e-6),
        "phi3-3b": LlamaConfig(hidden: 3072, layers: 32, heads: 32, kvHeads: 32, ffn: 8192, vocab: 32064),
        "internlm2.5-7b": LlamaConfig(hidden: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 92544, ropeTheta: 50000000),
    ]

    public static var all: [String: LlamaConfig] { LlamaConfig.presets.merging(paper) { a, _ in a } }

    public static func named(_ name: String) throws -> LlamaConfig {
        guard let config = all[name] else {
            throw ModelConfigError(file: name, problem: "not a model preset; expected one of \(all.keys.sorted().joined(separator: ", "))")
        }
        return config
    }

    /// A decoder shape from a Hugging Face `config.json` (hidden_size, num_hidden_layers,
    /// num_attention_heads, num_key_value_heads, intermediate_size, vocab_size, tie_word_embeddings).
    public static func fromHuggingFace(path: String) throws -> LlamaConfig {
        func fail(_ problem: String) -> ModelConfigError { ModelConfigError(file: path, problem: problem) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot be read") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw fail("is not a JSON object") }
        func integer(_ key: String, default value: Int? = nil) throws -> Int {
            if let n = json[key] as? Int { return n }
            if json[key] == nil, let value { return value }
            throw fail("key '\(key)': expected a whole number, got \(json[key].map { "\($0)" } ?? "nothing")")
        }
        let heads = try integer("num_attention_heads")
        var config = LlamaConfig(hidden: try integer("hidden_size"), layers: try integer("num_hidden_layers"), heads: heads,
                                 kvHeads: try integer("num_key_value_heads", default: heads), ffn: try integer("intermediate_size"),
                                 vocab: try integer("vocab_size"))
        if let theta = json["rope_theta"] as? Double { config.ropeTheta = Float(theta) }
        if let eps = json["rms_norm_eps"] as? Double { config.normEps = Float(eps) }
        config.tiedEmbeddings = json["tie_word_embeddings"] as? Bool ?? false
        if !config.problems.isEmpty { throw fail(config.problems.joined(separator: "; ")) }
        return config
    }
}

/// A model name or configuration file that cannot be used.
public struct ModelConfigError: InputError {
    public let file: String, problem: String
    public var description: String { "\(file): \(problem)" }
}
