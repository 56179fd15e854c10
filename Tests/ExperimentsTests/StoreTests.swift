import Decoder
import Experiments
import Foundation
import HDF5
import LayerGraph
import TestSupport
import XCTest

final class StoreTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-store-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// A record as an executed run leaves it, with made-up scores.
    func record(variant: String, scoreFine: Double, seed: UInt64 = 1, mode: RunMode = .full, baseline: String? = nil) throws -> RunRecord {
        var spec = RunSpec(preset: "tiny")!
        (spec.variant, spec.seed, spec.mode) = (variant, seed, mode)
        let layout = TokenLayout(grid: spec.grid, crops: spec.crops, system: 10, question: 8)
        var r = RunRecord(id: spec.id, config: spec.json, model: "tiny", variant: variant, mode: mode.rawValue, seed: seed, baselineID: baseline,
                          accounting: try AccountingRecord(config: LlamaConfig.presets["tiny"]!, spec: VariantSpec(variant), layout: layout))
        var doc = BenchmarkRecord(name: "doc-vqa", fineGrained: true, headline: scoreFine, scores: ["anls": scoreFine])
        doc.standardError = 0.05
        (doc.perSampleMetric, doc.perSample, doc.predictions, doc.prefillSeconds) = ("anls", [scoreFine, scoreFine], ["12", "é ü"], [0.01, 0.02])
        r.benchmarks = [doc, BenchmarkRecord(name: "pope", fineGrained: false, headline: 0.5, scores: ["f1": 0.5, "accuracy": 0.6])]
        r.timing = ["prefill_seconds_mean": 0.01]
        r.curves = ["step": [0, 1], "loss": [3.5, 2.5]]
        return r
    }

    /// A report's CSV as rows of column → value (no quoted commas in the tests' tables).
    func csvRows(_ path: String) throws -> [[String: String]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init))) }
    }

    func testRunsRoundTripAndOnlyCompleteMatchingFilesCount() throws {
        let store = RunStore(directory: folder.path)
        let r = try record(variant: "skip-vattn@from:2", scoreFine: 0.4)
        try store.write(r)
        let back = try XCTUnwrap(store.completed(id: r.id, config: r.config))
        XCTAssertEqual(back.scoreFine, 0.4, accuracy: 1e-12)
        XCTAssertEqual(back.benchmarks["pope"]?.scores["accuracy"], 0.6)
        XCTAssertEqual(back.flops, r.accounting.flops)
        XCTAssertGreaterThan(back.flopsReducedPercent, 0)
        XCTAssertEqual(back.spec?.variant, "skip-vattn@from:2")
        XCTAssertNil(store.completed(id: r.id, config: r.config + " "), "another configuration under the same id")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["\(r.id).h5"], "no temporary file left")

        // A file cut short, a file without the final status and a non-HDF5 file are not complete runs.
        let data = try Data(contentsOf: URL(fileURLWithPath: store.path(of: r.id)))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: store.path(of: r.id)))
        XCTAssertNil(store.completed(id: r.id, config: r.config))
        let unfinished = try HDF5File(path: store.path(of: "0000000000000000"), mode: .create)
        try unfinished.setAttribute("schema_version", "1")
        XCTAssertNil(store.completed(id: "0000000000000000", config: ""))
        XCTAssertEqual(store.runs().count, 0)
    }

    /// Another tool (h5py) reads the documented layout.
    func testH5pyReadsTheLayout() throws {
        let store = RunStore(directory: folder.path)
        let r = try record(variant: "proxyv(r=2)@from:1", scoreFine: 0.25)
        try store.write(r)
        let out = try runPython("""
            import sys, json, h5py
            f = h5py.File(sys.argv[1], "r")
            a = lambda k: f.attrs[k].decode()
            assert a("status") == "complete" and a("schema_version") == "1" and a("run_id") == sys.argv[2]
            assert json.loads(a("config"))["variant"] == "proxyv(r=2)@from:1"
            for k in ["variant", "seed", "squeeze_version", "git_revision", "started", "finished", "flops_convention"]: assert a(k)
            s = f["scores/doc-vqa"]
            assert abs(s.attrs["anls"] - 0.25) < 1e-12 and s.attrs["fine_grained"] == 1
            assert s.attrs["standard_error"] == 0.05 and abs(f["scores"].attrs["score_fine_standard_error"] - 0.05) < 1e-12
            assert "standard_error" not in f["scores/pope"].attrs
            assert list(s["per_sample"][:]) == [0.25, 0.25]
            assert [p.decode() for p in s["predictions"][:]] == ["12", "é ü"]
            m = f["accounting/per_layer_macs"]
            ops = f["accounting"].attrs["operations"].decode().split(",")
            assert m.shape == (4, len(ops)) and "q_proj" in ops
            assert abs(2 * m[:].sum() - f["accounting"].attrs["flops"]) < 1
            assert list(f["training/loss"][:]) == [3.5, 2.5]
            print("ok", f["scores"].attrs["score_fine"])
            """, arguments: [store.path(of: r.id), r.id])
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), "ok 0.25")
    }

    func testReportMarksTheParetoFrontAndPutsThePaperBesideOurs() throws {
        let store = RunStore(directory: folder.path)
        let base = try record(variant: "baseline", scoreFine: 0.5)
        try store.write(base)
        for (variant, score) in [("proxyv(r=2)@from:2", 0.55), ("skip-vattn-ffn@from:2", 0.3), ("mask-vv@from:2", 0.45)] {
            try store.write(try record(variant: variant, scoreFine: score, baseline: base.id))
        }
        let out = folder.appendingPathComponent("results").path
        let written = try Report(store: store).write(to: out)
        XCTAssertEqual(written.filter { $0.hasSuffix(".svg") }.count, 2)
        func table(_ name: String) throws -> [[String: String]] { try csvRows((out as NSString).appendingPathComponent(name)) }
        let frontier = try table("flops_vs_score_fine.csv")
        XCTAssertEqual(frontier.count, 4)
        // A run is optimal exactly when no other has fewer or equal FLOPs and a higher or equal score.
        for row in frontier {
            let f = Double(row["flops"]!)!, s = Double(row["score_fine"]!)!
            let dominated = frontier.contains { o in
                let (of, os) = (Double(o["flops"]!)!, Double(o["score_fine"]!)!)
                return of <= f && os >= s && (of < f || os > s)
            }
            XCTAssertEqual(row["pareto_optimal"], dominated ? "no" : "yes", "\(row["variant"]!)")
        }
        XCTAssertEqual(frontier.first { $0["variant"] == "baseline" }?["pareto_optimal"], "no")
        // Table 4: ProxyV from layer 2 of tiny's 4 sits where the paper's layer 16 of 32 does.
        let t4 = try table("table4_proxyv.csv")
        let proxy = try XCTUnwrap(t4.first { $0["setting"] == "proxyv" })
        XCTAssertEqual(proxy["score_fine_rel_pct"], "110.0")
        XCTAssertEqual(proxy["paper_start_layer"], "16")
        XCTAssertEqual(proxy["paper_score_fine_rel_pct"], "102.4")
        // Figure 2 holds TF masking runs only; this mask-vv run is a full one.
        XCTAssertEqual(try table("figure2_masking_ratio.csv").count, 0)
        XCTAssertEqual(try table("table2_attention_ffn_skip.csv").first?["paper_flops_reduced_pct"], "40")
    }

    /// Runs that differ only in their seed make one row: its Rel is the mean over seeds of each
    /// seed's Rel against that seed's baseline. Checked on figure 2, table 1 and table 5, by hand.
    func testReportsAverageSeedsAndFillThePaperTables() throws {
        let store = RunStore(directory: folder.path)
        var bases: [UInt64: String] = [:]
        for (seed, score) in [(UInt64(1), 0.5), (2, 0.8)] {
            let b = try record(variant: "baseline", scoreFine: score, seed: seed)
            try store.write(b)
            bases[seed] = b.id
        }
        // Seed 1: 0.4 / 0.5 = 80 %, seed 2: 0.6 / 0.8 = 75 %: the row's Rel is 77.5 %.
        for (seed, score) in [(UInt64(1), 0.4), (2, 0.6)] {
            try store.write(try record(variant: "mask-vv@from:1", scoreFine: score, seed: seed, mode: .tf, baseline: bases[seed]))
            var skip = try record(variant: "skip-vattn@from:2", scoreFine: score + 0.05, seed: seed, mode: .tf, baseline: bases[seed])
            skip.timing["prefill_time_ratio_median"] = seed == 1 ? 0.8 : 0.7
            (skip.timing["prefill_time_ratio_min"], skip.timing["prefill_time_ratio_max"]) = (0.6, seed == 1 ? 0.9 : 0.75)
            try store.write(skip)
        }
        try store.write(try record(variant: "proxyv(r=2)@from:1", scoreFine: 0.45, seed: 1, baseline: bases[1]))
        try store.write(try record(variant: "skip-vffn(dropkv=true)@from:2", scoreFine: 0.42, seed: 1, baseline: bases[1]))
        // FT runs: one as FT is made now, one made by the earlier finetuning of a fully trained baseline.
        let ft = try record(variant: "skip-vattn@from:3", scoreFine: 0.5, seed: 1, mode: .ft, baseline: bases[1])
        var earlier = try record(variant: "skip-vattn@from:1", scoreFine: 0.9, seed: 1, mode: .ft, baseline: bases[1])
        var earlierSpec = try JSONDecoder().decode(RunSpec.self, from: Data(earlier.config.utf8))
        earlierSpec.code = RunSpec.code
        (earlier.id, earlier.config) = (earlierSpec.id, earlierSpec.json)
        for r in [ft, earlier] { try store.write(r) }
        let out = folder.appendingPathComponent("results").path
        let report = Report(store: store)
        XCTAssertEqual(report.leftOut.map(\.id), [earlier.id], "an FT run that trained longer than its baseline is refused")
        _ = try report.write(to: out)
        func table(_ name: String) throws -> [[String: String]] { try csvRows((out as NSString).appendingPathComponent(name)) }
        let figure2 = try table("figure2_masking_ratio.csv")
        XCTAssertEqual(figure2.count, 1)
        XCTAssertEqual(Double(figure2[0]["masking_ratio"]!), 0.75, "(4 layers − 1) / 4")
        XCTAssertEqual(figure2[0]["runs"], "2")
        XCTAssertEqual(Double(figure2[0]["score_fine_rel_pct"]!)!, 77.5, accuracy: 0.05)
        XCTAssertEqual(figure2[0]["paper_score_fine_rel_pct"], "71", "the paper's Vicuna-7B point at ratio 0.75")
        // Table 1: skip-vattn from layer 2 of 4 is the paper's layer 16 of 32; (0.45/0.5 + 0.65/0.8) / 2 = 85.625 %.
        let t1 = try table("table1_attention_skip.csv").filter { $0["mode"] == "TF" }
        XCTAssertEqual(t1.count, 1)
        XCTAssertEqual(t1[0]["mode"], "TF")
        XCTAssertEqual(t1[0]["runs"], "2")
        XCTAssertEqual(Double(t1[0]["score_fine_rel_pct"]!)!, 85.625, accuracy: 0.05)
        XCTAssertEqual(Double(t1[0]["score_fine"]!)!, 100 * (0.45 + 0.65) / 2, accuracy: 0.05)
        XCTAssertEqual(t1[0]["paper_start_layer"], "16")
        // Its intervals. Over seeds: 55 ± t(0.975, 1)·s/√2 with s = 10√2, so ± 127.062. Paired:
        // every sample of a run scores the same, so every redraw gives the estimate: the
        // differences −5 and −15 points average −10.
        XCTAssertEqual(Double(t1[0]["score_fine_low"]!)!, 55 - 127.062, accuracy: 0.05)
        XCTAssertEqual(Double(t1[0]["score_fine_high"]!)!, 55 + 127.062, accuracy: 0.05)
        for column in ["score_fine_diff", "score_fine_diff_low", "score_fine_diff_high"] { XCTAssertEqual(Double(t1[0][column]!)!, -10, accuracy: 0.005) }
        for column in ["score_fine_rel_pct_low", "score_fine_rel_pct_high"] { XCTAssertEqual(Double(t1[0][column]!)!, 85.625, accuracy: 0.05) }
        // Prefill time: the seeds' median pairs reduce it by 20 % and 30 %; the pairs range from 10 % to 40 %.
        XCTAssertEqual(Double(t1[0]["time_reduced_pct"]!)!, 25, accuracy: 0.05)
        XCTAssertEqual(Double(t1[0]["time_reduced_pct_min"]!)!, 10, accuracy: 0.05)
        XCTAssertEqual(Double(t1[0]["time_reduced_pct_max"]!)!, 40, accuracy: 0.05)
        let paired = try table("paired_differences.csv").filter { $0["variant"] == "skip-vattn@from:2" }
        XCTAssertEqual(paired.map { $0["benchmark"] }, ["score_fine", "doc-vqa"], "Score_fine, then each benchmark with per-sample results")
        XCTAssertEqual(Double(paired[1]["diff"]!)!, -10, accuracy: 0.005)
        XCTAssertEqual(Double(paired[1]["baseline_score"]!)!, 65, accuracy: 0.05)
        // Table 5: the baselines (seeds averaged) and ProxyV (one seed).
        let t5 = try table("table5_vs_token_reduction.csv")
        let proxy = try XCTUnwrap(t5.first { $0["method"] == "proxyv" })
        XCTAssertEqual(proxy["runs"], "1")
        XCTAssertEqual(Double(proxy["score_fine"]!)!, 45, accuracy: 0.05)
        let baseline = try XCTUnwrap(t5.first { $0["variant"] == "baseline" })
        XCTAssertEqual(baseline["runs"], "2")
        XCTAssertEqual(Double(baseline["score_fine"]!)!, 65, accuracy: 0.05)
        // The peers' table: Skip-Vision from layer 2 of 4 drops the 80 vision tokens' entries of
        // layers 2 and 3 from a cache of 4 × 103: 38.8 % fewer bytes.
        let peers = try table("peers_computation_level.csv")
        XCTAssertEqual(Set(peers.compactMap { $0["design"] }), ["baseline", "proxy tokens (ProxyV)", "FFN skipped (Skip-Vision)"])
        let skip = try XCTUnwrap(peers.first { $0["design"] == "FFN skipped (Skip-Vision)" })
        XCTAssertEqual(Double(skip["score_fine"]!)!, 42, accuracy: 0.05)
        XCTAssertEqual(Double(skip["kv_cache_reduced_pct"]!)!, 100 * 160 / 412, accuracy: 0.05)
        XCTAssertEqual(Double(skip["score_fine_diff"]!)!, -8, accuracy: 0.005)
    }

    /// `index.html` is one self-contained page: every table and figure of the report inline,
    /// each run's provenance and configuration, nothing fetched from elsewhere. Loaded in headless
    /// Chromium it logs no console message and shows every table.
    func testHTMLReportIsSelfContainedAndLoadsInChromium() throws {
        let store = RunStore(directory: folder.path)
        let base = try record(variant: "baseline", scoreFine: 0.5)
        try store.write(base)
        try store.write(try record(variant: "skip-vattn@from:2", scoreFine: 0.4, mode: .tf, baseline: base.id))
        let report = Report(store: store), out = folder.appendingPathComponent("results").path
        let written = try report.write(to: out, html: true)
        XCTAssertEqual(written.count, report.files().count + 1)
        let page = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        let tables = report.files().map(\.name).filter { $0.hasSuffix(".csv") }
        for name in tables { XCTAssertTrue(page.contains("<table id=\"\(name)\">"), name) }
        XCTAssertEqual(page.components(separatedBy: "<svg ").count - 1, 2, "both figures inline")
        XCTAssertTrue(page.contains(base.id) && page.contains(SqueezeVersion.machine), "each run's provenance")
        for reference in ["src=", "<link", "<script", "@import", "url("] { XCTAssertFalse(page.contains(reference), "nothing fetched: \(reference)") }

        guard let (dom, log) = try loadInChromium(out + "/index.html") else {
            if ProcessInfo.processInfo.environment["SQUEEZE_REQUIRE_CHROMIUM"] != nil { XCTFail("Chromium is not installed") }
            throw XCTSkip("needs Chromium (scripts/setup.sh --test installs it)")
        }
        XCTAssertFalse(log.contains("CONSOLE"), "console messages: \(log.split(separator: "\n").filter { $0.contains("CONSOLE") })")
        for name in tables + ["runs-provenance"] { XCTAssertTrue(dom.contains("<table id=\"\(name)\">"), "\(name) in the loaded page") }
        XCTAssertTrue(dom.contains("<figure id=\"figure2_masking_ratio.svg\"><svg"), "the figures render inline")
    }

    /// Extreme and non-finite scores do not hang or break the report: every file is written, the
    /// non-finite cells are empty and the figures keep finite coordinates. A file that is not a
    /// run is named, not skipped without a word.
    func testReportHoldsForExtremeValuesAndNamesWhatItLeavesOut() throws {
        for scores in [[1e308, -1e308], [.nan], [.infinity, 0.3], [1e15, 1e15 + 1e-3]] {
            let store = RunStore(directory: folder.appendingPathComponent(UUID().uuidString).path)
            for (seed, score) in scores.enumerated() { try store.write(try record(variant: "baseline", scoreFine: score, seed: UInt64(seed + 1))) }
            try "not HDF5".write(toFile: store.directory + "/0000000000000000.h5", atomically: true, encoding: .utf8)
            let report = Report(store: store)
            XCTAssertEqual(report.leftOut.map(\.id), ["0000000000000000.h5"], "\(scores)")
            let out = folder.appendingPathComponent(UUID().uuidString).path
            XCTAssertEqual(try report.write(to: out).count, report.files().count, "\(scores)")
            for svg in ["figure2_masking_ratio.svg", "flops_vs_score_fine.svg"] {
                let text = try String(contentsOfFile: out + "/" + svg, encoding: .utf8)
                XCTAssertFalse(text.contains("nan") || text.contains("inf"), "\(scores): \(svg)")
            }
        }
    }

    /// A run file written onto a full disk fails with the reason, and the complete file it would
    /// have replaced is untouched, with no temporary file left; a set of reports is written whole
    /// or not at all (a 1 MiB tmpfs, mounted as root; skipped elsewhere).
    func testAFullDiskLosesNothing() throws {
        let mount = folder.appendingPathComponent("tmpfs").path
        guard let unmount = mountSmallDisk(at: mount, bytes: 1 << 20) else { throw XCTSkip("needs root to mount a small tmpfs") }
        defer { unmount() }
        let store = RunStore(directory: mount + "/store"), reports = mount + "/reports"
        var r = try record(variant: "baseline", scoreFine: 0.4)
        try store.write(r)
        _ = try Report(store: store).write(to: reports)
        func contents(_ directory: String) throws -> [String: Data] {
            Dictionary(uniqueKeysWithValues: try FileManager.default.contentsOfDirectory(atPath: directory).map {
                ($0, try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)))
            })
        }
        let (storeBefore, reportsBefore) = (try contents(store.directory), try contents(reports))
        fillDisk(mount + "/filler")
        r.benchmarks[0].predictions = Array(repeating: String(repeating: "x", count: 400), count: 400)
        r.benchmarks[0].perSample = Array(repeating: 0.4, count: 400)
        r.benchmarks[0].prefillSeconds = Array(repeating: 0.01, count: 400)
        XCTAssertThrowsError(try store.write(r)) { error in
            XCTAssertTrue("\(error)".contains(r.id), "names the file: \(error)")
        }
        let other = RunStore(directory: folder.appendingPathComponent("other").path)
        try other.write(try record(variant: "mask-vv@from:1", scoreFine: 0.2, mode: .tf))
        XCTAssertThrowsError(try Report(store: other).write(to: reports)) { error in
            XCTAssertTrue("\(error)".contains("no space left"), "says why: \(error)")
        }
        XCTAssertEqual(try contents(store.directory), storeBefore, "the run file is untouched, nothing temporary is left")
        XCTAssertEqual(try contents(reports), reportsBefore, "no report changed or was left half written")
    }

    func testLmmsEvalResultsImportWithTheSuiteNamesAndPaperScaleFLOPs() throws {
        let path = folder.appendingPathComponent("run_results.json").path
        try """
            {"results": {"docvqa_val": {"alias": "docvqa_val", "anls,none": 0.70, "anls_stderr,none": "N/A"},
             "chartqa": {"relaxed_overall,none": 0.55, "relaxed_human_split,none": 0.41},
             "infovqa_val": {"anls,none": 0.30}, "textvqa_val": {"exact_match,none": 0.60}, "ocrbench": {"ocrbench_accuracy,none": 0.50},
             "mme": {"mme_cognition_score,none": 311.2}}, "config": {"model": "llava"}}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let imported = try LmmsEvalImport(path: path, model: "vicuna-7b", variant: "proxyv(r=4)@from:12", mode: "full")
        XCTAssertEqual(imported.record.scoreFine, (0.70 + 0.55 + 0.30 + 0.60 + 0.50) / 5, accuracy: 1e-12)
        XCTAssertEqual(Set(imported.record.benchmarks.map(\.name)), ["doc-vqa", "chart-qa", "info-vqa", "text-vqa", "ocr", "mme"])
        XCTAssertEqual(imported.record.accounting.reducedPercent, 45.5, accuracy: 0.05)   // the paper's 46 % (Table 4)
        let store = RunStore(directory: folder.appendingPathComponent("store").path)
        try store.write(imported.record)
        XCTAssertEqual(store.runs().first?.model, "vicuna-7b")

        try "{\"results\": {}}".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LmmsEvalImport(path: path, model: "vicuna-7b", variant: "baseline", mode: "full")) {
            XCTAssertTrue("\($0)".contains("no \"results\""))
        }
        try "{\"results\": {\"chartqa\": {\"relaxed_human_split,none\": 0.4}}}".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LmmsEvalImport(path: path, model: "vicuna-7b", variant: "baseline", mode: "full")) {
            XCTAssertTrue("\($0)".contains("lacks relaxed_overall"))
        }
        XCTAssertThrowsError(try LmmsEvalImport(path: path, model: "tiny", variant: "baseline", mode: "full"))
        // Bad files and settings, each refused with what is wrong.
        let bad: [(json: String, mode: String, message: String)] = [
            (#"{"results": {"pope": {"pope_f1_score,none": 1e308}}}"#, "full", "1e+308 is not a score"),
            (#"{"results": {"pope": {"pope_f1_score,none": -0.5}}}"#, "full", "-0.5 is not a score"),
            (#"{"results": {"a/b": {"acc,none": 0.5}}}"#, "full", "'a/b' is not a task name"),
            (#"{"results": {"pope": {"pope_f1_score,none": 0.5}}}"#, "weird", "--mode 'weird'"),
            (#"{"results": {"pope": {"pope_f1_score,none": 0.8, "pope_accuracy,none": NaN}}}"#, "full", ""),
        ]
        for c in bad {
            try c.json.write(toFile: path, atomically: true, encoding: .utf8)
            if c.message.isEmpty {
                // lmms-eval's NaN is read as no score, not as a broken file.
                XCTAssertEqual(try LmmsEvalImport(path: path, model: "vicuna-7b", variant: "baseline", mode: c.mode).record.benchmarks.first?.headline, 0.8)
                continue
            }
            XCTAssertThrowsError(try LmmsEvalImport(path: path, model: "vicuna-7b", variant: "baseline", mode: c.mode), c.json) {
                XCTAssertTrue("\($0)".contains(c.message), "\($0)")
            }
        }
    }
}
