import Accounting
import Decoder
import Foundation
import Kernels
import LayerGraph

/// Brings an lmms-eval results file (`*_results.json`: `{"results": {task: {"metric,filter": value}}}`,
/// scores in 0…1) into the store as a run of a paper-scale model and variant, so the FLOPs and
/// accuracy tables can hold real models beside Squeeze's own runs. The paper's benchmarks map
/// onto the suite's names (DocVQA → doc-vqa, …) so Score_fine means the same thing; other tasks
/// are kept under their lmms-eval names.
public struct LmmsEvalImport {
    /// lmms-eval task → (suite name, the metric that is its headline, fine-grained).
    static let known: [String: (name: String, metric: String, fine: Bool)] = [
        "docvqa_val": ("doc-vqa", "anls", true), "docvqa": ("doc-vqa", "anls", true),
        "chartqa": ("chart-qa", "relaxed_overall", true),
        "infovqa_val": ("info-vqa", "anls", true), "infovqa": ("info-vqa", "anls", true),
        "textvqa_val": ("text-vqa", "exact_match", true), "textvqa": ("text-vqa", "exact_match", true),
        "ocrbench": ("ocr", "ocrbench_accuracy", true),
        "pope": ("pope", "pope_f1_score", false),
    ]

    public struct Failure: InputError {
        public let file: String, problem: String
        public var description: String { "\(file): \(problem)" }
    }

    public let record: RunRecord

    /// Reads `path`; the model is a paper preset, the variant in the text form, the prompt the
    /// paper's (5 crops of 24×24 and 50 text tokens unless given).
    public init(path: String, model: String, variant: String, mode: String, crops: Int = 5, grid: Int = 24, text: Int = 50) throws {
        func fail(_ problem: String) -> Failure { Failure(file: path, problem: problem) }
        guard RunMode(rawValue: mode) != nil else { throw fail("--mode '\(mode)': expected one of \(RunMode.allCases.map(\.rawValue).joined(separator: ", "))") }
        guard (1...16).contains(crops), (1...512).contains(grid), (0...100_000).contains(text) else {
            throw fail("--crops must be 1 to 16, --grid 1 to 512, --text 0 to 100000")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot be read") }
        // lmms-eval writes NaN for scores it could not compute; JSON has no NaN, so read it as null.
        let decoded = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "NaN", with: "null")
        guard let json = try? JSONSerialization.jsonObject(with: Data(decoded.utf8)) as? [String: Any] else { throw fail("is not a JSON object") }
        guard let results = json["results"] as? [String: Any], !results.isEmpty else {
            throw fail("has no \"results\" object of tasks (expected lmms-eval's *_results.json)")
        }
        guard let config = ModelPresets.paper[model] else {
            throw fail("--model '\(model)' is not a paper model; expected one of \(ModelPresets.paper.keys.sorted().joined(separator: ", "))")
        }
        let spec: VariantSpec
        do { spec = try VariantSpec(variant) } catch { throw fail("variant: \(error)") }
        let layout = TokenLayout(grid: grid, crops: crops, system: 0, question: text)
        let accounting: AccountingRecord
        do { accounting = try AccountingRecord(config: config, spec: spec, layout: layout) } catch { throw fail("variant on \(model): \(error)") }

        var benchmarks: [BenchmarkRecord] = []
        for (task, value) in results.sorted(by: { $0.key < $1.key }) {
            guard let metrics = value as? [String: Any] else { throw fail("results.\(task) is not an object of metrics") }
            guard !task.isEmpty, !task.contains("/"), task.count <= 200 else { throw fail("results: '\(task.prefix(200))' is not a task name (no '/', at most 200 characters)") }
            // "anls,none" → anls; stderr entries and non-numbers are not scores.
            var scores: [String: Double] = [:]
            for (key, v) in metrics where !key.contains("_stderr") {
                guard let number = (v as? NSNumber)?.doubleValue, !(v is Bool) else { continue }
                // Fractions (lmms-eval's 0…1), percentages, or summed scores such as MME's (at most 2,800).
                guard number.isFinite, (0...10_000).contains(number) else { throw fail("results.\(task).\(key): \(number) is not a score (expected 0 to 10000)") }
                scores[String(key.split(separator: ",").first ?? "")] = number
            }
            guard !scores.isEmpty else { continue }
            let mapping = LmmsEvalImport.known[task]
            guard let headline = mapping.flatMap({ scores[$0.metric] }) ?? (mapping == nil ? scores.sorted(by: { $0.key < $1.key }).first?.value : nil) else {
                throw fail("results.\(task) lacks \(mapping!.metric) (has \(scores.keys.sorted().joined(separator: ", ")))")
            }
            benchmarks.append(BenchmarkRecord(name: mapping?.name ?? task, fineGrained: mapping?.fine ?? false, headline: headline, scores: scores))
        }
        guard !benchmarks.isEmpty else { throw fail("no task in \"results\" has a numeric score") }

        let description: [String: String] = ["source": "lmms-eval", "model": model, "variant": variant, "mode": mode,
                                             "file_hash": String(format: "%016llx", fnv1a(data))]
        let configJSON = String(decoding: try JSONSerialization.data(withJSONObject: description, options: [.sortedKeys]), as: UTF8.self)
        let id = "import-" + String(format: "%012llx", fnv1a(configJSON.utf8) >> 16)
        var record = RunRecord(id: id, config: configJSON, model: model, variant: variant, mode: mode, seed: 0, accounting: accounting)
        record.source = "lmms-eval: \((path as NSString).lastPathComponent)"
        record.benchmarks = benchmarks
        self.record = record
    }
}
