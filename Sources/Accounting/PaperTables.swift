import Foundation

/// The paper's published numbers (copied from the paper's tables into `Resources/paper/*.csv`).
public enum PaperTables {
    /// Rows of one CSV file as column → value, comment lines skipped.
    public static func rows(_ file: String) -> [[String: String]] {
        guard let url = Bundle.module.url(forResource: file, withExtension: "csv", subdirectory: "paper"),
              let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else { return [] }
        return lines.dropFirst().map { line in
            let values = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return Dictionary(uniqueKeysWithValues: zip(header, values))
        }
    }

    /// The paper's prefill FLOPs reduction (percent) for a model and a variant applied from a
    /// start layer, where a table gives one: ProxyV (Table 4), skip-vattn (Table 1) and
    /// skip-vattn-ffn (Table 2).
    public static func flopsReduction(model: String, variant: String, startLayer: Int) -> Double? {
        let (file, match): (String, ([String: String]) -> Bool)
        switch variant {
        case "proxyv": (file, match) = ("table4_proxyv_across_llms", { $0["setting"] == "proxyv" })
        case "skip-vattn": (file, match) = ("table1_attention_skip", { $0["mode"] == "FT" })
        case "skip-vattn-ffn": (file, match) = ("table2_attention_ffn_skip", { $0["skipped"] == "ATN+FFN" })
        default: return nil
        }
        return rows(file).first { $0["model"] == model && $0["start_layer"] == String(startLayer) && match($0) }
            .flatMap { Double($0["flops_reduced_pct"] ?? "") }
    }
}
