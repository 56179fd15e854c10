import Accounting
import Decoder
import Foundation
import LayerGraph
import XCTest

final class AccountingTests: XCTestCase {
    /// The paper's prefill: 5 crops of 24×24, 5 newlines, 50 text tokens.
    let layout = TokenLayout(grid: 24, crops: 5, system: 0, question: 50)

    func reduction(_ model: String, _ variant: String) throws -> Double {
        let config = try ModelPresets.named(model)
        func total(_ spec: VariantSpec) throws -> Double {
            let graph = try LayerGraph(spec: spec, layers: config.layers, hidden: config.hidden, grid: 24)
            return Double(Accountant(config: config, graph: graph, layout: layout).prefill(convention: .paper).reduce(0) { $0 + $1.flops })
        }
        return 100 * (1 - (try total(VariantSpec(variant))) / (try total(.baseline)))
    }

    func paper(_ table: String, _ filter: ([String: String]) -> Bool) -> [[String: String]] {
        PaperTables.rows(table).filter(filter)
    }

    /// Table 4 within 0.6 points for Vicuna-7B/13B, Llama3-8B and Qwen2-7B.
    func testTable4ProxyVReductions() throws {
        let rows = paper("table4_proxyv_across_llms") { $0["setting"] == "proxyv" && ["vicuna-7b", "vicuna-13b", "llama3-8b", "qwen2-7b"].contains($0["model"]!) }
        XCTAssertEqual(rows.count, 8)
        for row in rows {
            let ours = try reduction(row["model"]!, "proxyv(r=4)@from:\(row["start_layer"]!)")
            XCTAssertEqual(ours, Double(row["flops_reduced_pct"]!)!, accuracy: 0.6, "\(row)")
        }
    }

    /// Tables 1 and 2 (Vicuna-7B, vision attention skipped, and attention + FFN skipped) within 1 point.
    func testTables1And2SkipReductions() throws {
        for row in paper("table1_attention_skip", { $0["mode"] == "FT" }) {
            XCTAssertEqual(try reduction("vicuna-7b", "skip-vattn@from:\(row["start_layer"]!)"), Double(row["flops_reduced_pct"]!)!, accuracy: 1)
        }
        let table2 = paper("table2_attention_ffn_skip") { $0["skipped"] == "ATN+FFN" }
        XCTAssertEqual(table2.count, 3)
        for row in table2 {
            XCTAssertEqual(try reduction("vicuna-7b", "skip-vattn-ffn@from:\(row["start_layer"]!)"), Double(row["flops_reduced_pct"]!)!, accuracy: 1)
        }
    }

    func testModuleParametersMatchThePaper() throws {
        let config = try ModelPresets.named("vicuna-7b")
        func params(_ variant: String) throws -> [String: Int] {
            let graph = try LayerGraph(spec: VariantSpec(variant), layers: 32, hidden: 4096, grid: 24)
            return Dictionary(uniqueKeysWithValues: Accountant(config: config, graph: graph, layout: layout).parameters.map { ($0.module, $0.count) })
        }
        XCTAssertEqual(try params("proxyv@layers:12")["guided vision updates"], 14_684_160, "one ProxyV vision MLP at d = 4096")
        XCTAssertEqual(try params("skip-vattn-ffn@layers:12")["light MLPs"], 9_441_280, "9.44 M per light MLP")
        XCTAssertEqual(try params("baseline")["decoder layers"], 32 * 202_383_360)
    }

    func testKVCacheFollowsWhatLaterTokensCanAttend() throws {
        let config = try ModelPresets.named("vicuna-7b")
        func bytes(_ variant: String) throws -> Int {
            let graph = try LayerGraph(spec: VariantSpec(variant), layers: 32, hidden: 4096, grid: 24)
            return Accountant(config: config, graph: graph, layout: layout).kvCacheBytes(bytesPerValue: 2)
        }
        let baseline = try bytes("baseline")
        XCTAssertEqual(baseline, 32 * 2 * 2935 * 4096 * 2)
        XCTAssertEqual(try bytes("proxyv(r=4)@from:12"), baseline, "proxy entries are dropped after the prefill")
        XCTAssertEqual(try bytes("fastv(k=2,r=0.5)"), 2 * 2 * 2935 * 8192 + 30 * 2 * (2935 - 1440) * 8192)
    }

    /// ProxyV drops its proxies from the cache, so its decode steps cost what the baseline's do.
    func testDecodeStepsOfProxyVEqualTheBaselines() throws {
        let config = try ModelPresets.named("llama3-8b")
        func step(_ variant: String, _ convention: CountingConvention) throws -> Int {
            let graph = try LayerGraph(spec: VariantSpec(variant), layers: 32, hidden: 4096, grid: 24)
            return Accountant(config: config, graph: graph, layout: layout).decodeStep(generated: 7, convention: convention).reduce(0) { $0 + $1.flops }
        }
        for convention in CountingConvention.allCases {
            XCTAssertEqual(try step("proxyv(r=4)@from:16", convention), try step("baseline", convention))
            XCTAssertLessThan(try step("fastv(k=2,r=0.75)", convention), try step("baseline", convention), "pruned tokens leave the cache")
        }
        // Per layer: Q, O 2d²; K, V 2·d·d_kv; attention 4·(2935 + 7 + 1)·d; FFN 6·d·f.
        let d = 4096, kv = 1024, f = 14336
        XCTAssertEqual(try step("baseline", .paper), 32 * (4 * d * d + 4 * d * kv + 4 * 2943 * d + 6 * d * f))
    }

    func testHuggingFaceConfig() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try #"{"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": false, "rope_theta": 1000000.0}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ModelPresets.fromHuggingFace(path: path)
        XCTAssertEqual(config.kvHeads, 4)
        XCTAssertEqual(config.ropeTheta, 1_000_000)
        XCTAssertEqual(config.ffn, (try ModelPresets.named("qwen2-7b")).ffn)
        try #"{"hidden_size": "big"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelPresets.fromHuggingFace(path: path)) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("num_attention_heads"), "\(error)")
        }
    }

    /// The paper's six LLMs come from `model_presets.csv`: Qwen2-7B's public config, as written in it.
    func testPaperModelsAreReadFromTheirCSV() throws {
        XCTAssertEqual(Set(ModelPresets.paper.keys), ["vicuna-7b", "vicuna-13b", "llama3-8b", "qwen2-7b", "phi3-3b", "internlm2.5-7b"])
        XCTAssertEqual(ModelPresets.paper["qwen2-7b"], LlamaConfig(hidden: 3584, layers: 28, heads: 28, kvHeads: 4, ffn: 18944, vocab: 152064,
                                                                  ropeTheta: 1_000_000, normEps: 1e-6))
    }
}
