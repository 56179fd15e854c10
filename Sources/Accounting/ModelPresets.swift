import Foundation
import Kernels
import LayerGraph

/// Model shapes by name: the small presets Squeeze trains, and the six LLMs of the paper
/// (from their public configs, read from `Resources/paper/model_presets.csv`).
public enum ModelPresets {
    public static let paper: [String: LlamaConfig] = Dictionary(uniqueKeysWithValues: PaperTables.rows("model_presets").map { row in
        func number(_ key: String) -> Double {
            guard let value = row[key].flatMap(Double.init) else { preconditionFailure("model_presets.csv: \(row["model"] ?? "?") lacks \(key)") }
            return value
        }
        let config = LlamaConfig(hidden: Int(number("hidden")), layers: Int(number("layers")), heads: Int(number("heads")),
                                 kvHeads: Int(number("kv_heads")), ffn: Int(number("ffn")), vocab: Int(number("vocab")),
                                 ropeTheta: Float(number("rope_theta")), normEps: Float(number("norm_eps")))
        return (row["model"]!, config)
    })

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
