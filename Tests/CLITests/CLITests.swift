import Foundation
import HDF5
import XCTest

/// The `squeeze` executable as a user runs it.
final class CLITests: XCTestCase {
    typealias Result = SqueezeResult
    static var binary: URL { squeezeBinary }
    func squeeze(_ arguments: String...) throws -> Result { try runSqueeze(arguments) }
    func squeeze(_ arguments: [String]) throws -> Result { try runSqueeze(arguments) }

    var folder: URL!
    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-cli-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testHelpListsEveryCommandWithADescription() throws {
        let help = try squeeze("--help").out
        for command in ["sweep", "report", "import", "train", "train-toy", "eval", "inspect", "graph", "flops", "time", "data", "bench"] {
            let line = help.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(command + " ") }
            XCTAssertNotNil(line, "\(command) is listed")
            XCTAssertGreaterThan(line.map { $0.split(separator: " ").count } ?? 0, 3, "\(command) has a description")
        }
        let bench = try squeeze("bench", "--help").out
        for sub in ["gemm", "layer", "train"] { XCTAssertTrue(bench.contains("  \(sub) "), "bench \(sub) listed") }
    }

    /// The loss visibly falls and the checkpoint loads back.
    func testTrainOnCopyTaskLowersTheLossAndWritesACheckpoint() throws {
        let out = folder.appendingPathComponent("run").path
        let r = try squeeze("train-toy", "--task", "copy", "--model", "tiny", "--steps", "150", "--lengths", "2...4", "--out", out, "--threads", "1")
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("train 150/150"), "plain progress lines when not on a terminal: \(r.err)")
        let log = try String(contentsOfFile: out + "/train_log.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        let losses = log.map { Float($0.split(separator: ",")[1])! }
        XCTAssertEqual(losses.count, 150)
        let first = losses.prefix(10).reduce(0, +) / 10, last = losses.suffix(10).reduce(0, +) / 10
        XCTAssertLessThan(last, 0.75 * first, "loss falls: \(first) -> \(last)")
        let inspect = try squeeze("inspect", out + "/model.safetensors")
        XCTAssertEqual(inspect.status, 0, inspect.err)
        XCTAssertTrue(inspect.out.contains("model.layers.1.mlp.down_proj.weight  F32 [64, 192]"), inspect.out)
    }


    /// `profile` evaluates TF mask-vv and skip-vattn from every layer of a trained baseline on the
    /// same samples: one CSV row each, with Rel's interval around its estimate where Rel is defined,
    /// skip-vattn's FLOPs saved falling with a later start (as `flops` counts them), and the
    /// figure; a variant's run is refused with status 2.
    func testProfileCoversEveryLayerOfBothVariants() throws {
        let run = folder.appendingPathComponent("base").path, out = folder.appendingPathComponent("profile").path
        let train = ["train", "--preset", "tiny", "--grid", "4", "--crops", "2", "--stage1-steps", "2", "--steps", "10", "--threads", "1"]
        XCTAssertEqual(try squeeze(train + ["--out", run]).status, 0)
        let r = try squeeze("profile", run, "--samples", "6", "--out", out, "--threads", "1")
        XCTAssertEqual(r.status, 0, r.err)
        let lines = try String(contentsOfFile: out + "/profile.csv", encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ",").map(String.init)
        let rows = lines.dropFirst().map { line in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
        XCTAssertEqual(rows.map { "\($0["variant"]!)@from:\($0["start_layer"]!)" }, (0..<4).map { "mask-vv@from:\($0)" } + (0..<4).map { "skip-vattn@from:\($0)" })
        for row in rows {
            guard let rel = Double(row["score_fine_rel_pct"]!) else { continue }
            XCTAssertLessThanOrEqual(Double(row["score_fine_rel_pct_low"]!)!, rel + 1e-9)
            XCTAssertGreaterThanOrEqual(Double(row["score_fine_rel_pct_high"]!)!, rel - 1e-9)
        }
        let saved = rows.filter { $0["variant"] == "skip-vattn" }.map { Double($0["flops_reduced_pct"]!)! }
        XCTAssertEqual(saved, saved.sorted(by: >))
        XCTAssertGreaterThan(saved[0], 0)
        XCTAssertEqual(rows.filter { $0["variant"] == "skip-vattn" }.map { $0["paper_start_layer"]! }, ["0", "8", "16", "24"])
        XCTAssertTrue(try String(contentsOfFile: out + "/profile.svg", encoding: .utf8).hasPrefix("<svg"))
        XCTAssertTrue(r.out.contains("skip-vattn: "), r.out)

        let variant = folder.appendingPathComponent("variant").path
        XCTAssertEqual(try squeeze(train + ["--variant", "skip-vattn@from:2", "--out", variant]).status, 0)
        let refused = try squeeze("profile", variant, "--samples", "2")
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.err.contains("a profile starts from a baseline"), refused.err)
    }

    func testDamagedCheckpointExitsWithStatusTwoAndNamesTheFile() throws {
        let path = folder.appendingPathComponent("broken.safetensors").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0x7B])))
        for args in [["inspect", path], ["train-toy", "--task", "copy", "--init-from", path, "--steps", "1", "--out", folder.path]] {
            let r = try squeeze(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(path) && r.err.contains("past the end"), r.err)
            XCTAssertFalse(r.err.contains("Fatal error"), r.err)
        }
    }

    func testGraphPrintsEachLayerAndRejectsBadVariants() throws {
        let r = try squeeze("graph", "--model", "tiny", "--variant", "proxyv(r=4)@from:2")
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("layers 0..<2\n  baseline"), r.out)
        let layer2 = r.out.components(separatedBy: "layer 2\n").last!.components(separatedBy: "layer 3").first!
        XCTAssertTrue(layer2.contains("  queries      system, newline, question, answer, proxy"), r.out)
        XCTAssertTrue(layer2.contains("proxy→vision") && layer2.contains("create proxies (bilinear 1/4)"), r.out)
        let bad = try squeeze("graph", "--variant", "proxyv(r=4)@form:1")
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("column 13: expected a schedule"), bad.err)
    }

    func testFlopsReproducesThePaperAsJSON() throws {
        let r = try squeeze("flops", "--model", "vicuna-7b", "--variant", "proxyv(r=4)@from:12", "--crops", "5", "--grid", "24",
                            "--text", "50", "--convention", "paper", "--format", "json")
        XCTAssertEqual(r.status, 0, r.err)
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        XCTAssertEqual(json["reduction_pct"] as! Double, 45.5, accuracy: 0.05)
        XCTAssertEqual(json["paper_reduction_pct"] as? Double, 46)
        for key in ["flops", "baseline_flops", "macs", "params", "kv_cache_bytes", "decode_step_flops"] { XCTAssertNotNil(json[key] as? Int, key) }
        XCTAssertEqual((json["elementwise_flops"] as? [String: Int])?.keys.sorted(), ["norms", "rope", "softmax"])
        XCTAssertEqual((json["per_layer"] as! [[String: Any]]).count, 32)
        let csv = try squeeze("flops", "--variant", "skip-vattn-ffn@from:30", "--format", "csv")
        XCTAssertTrue(csv.out.hasPrefix("layer,q_proj,k_proj,v_proj,attention_scores,attention_values,o_proj,ffn,light_mlp,total\n"), csv.out)
        let bad = try squeeze("flops", "--model", "vicuna-70b")
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("vicuna-70b: not a model preset"), bad.err)
    }

    /// Timing composes one layer of each kind: for ProxyV, the baseline layers, the first ProxyV
    /// layer (proxies made), the middle ones and the last (proxies dropped).
    func testTimeComposesLayerKinds() throws {
        let r = try squeeze("time", "--model", "small", "--variant", "proxyv(r=4)@from:4", "--grid", "8", "--crops", "2",
                            "--reps", "1", "--format", "json", "--threads", "1")
        XCTAssertEqual(r.status, 0, r.err)
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let kinds = json["kinds"] as! [[String: Any]]
        XCTAssertEqual(kinds.map { $0["layers"] as! [Int] }, [[0, 1, 2, 3], [4], [5, 6], [7]])
        let perKind = kinds.map { ($0["layers"] as! [Int]).count > 0 ? $0["median_seconds"] as! Double : 0 }
        let composed = zip(kinds, perKind).reduce(0.0) { $0 + Double(($1.0["layers"] as! [Int]).count) * $1.1 }
        XCTAssertEqual(json["prefill_seconds"] as! Double, composed, accuracy: 1e-9)
        XCTAssertEqual(json["flops_reduction_pct"] as! Double, 100 * (1 - (4 + 4 * (kinds[1]["flops_ratio_to_baseline"] as! Double)) / 8), accuracy: 1e-6)
    }

    /// A multimodal run killed with SIGKILL and started again resumes from its last checkpoint and
    /// ends with the same weights, byte for byte, as a run that was never interrupted. Checkpoints
    /// fall every 5 steps and the stages are 5 steps long, so the kill, which follows the first
    /// checkpoint, leaves a checkpoint at a stage's end: the resumed run starts a new stage (checked).
    func testKilledRunResumesToIdenticalWeights() throws {
        let args = ["train", "--preset", "tiny", "--variant", "proxyv-learned(n=2)@from:2", "--grid", "4", "--crops", "2",
                    "--batch-size", "2", "--language-steps", "5", "--stage1-steps", "5", "--steps", "10", "--checkpoint-every", "5", "--threads", "1"]
        let whole = folder.appendingPathComponent("whole").path, killed = folder.appendingPathComponent("killed").path
        XCTAssertEqual(try squeeze(args + ["--out", whole]).status, 0)

        let process = Process()
        process.executableURL = Self.binary
        process.arguments = args + ["--out", killed]
        process.standardError = FileHandle.nullDevice
        try process.run()
        let checkpoint = killed + "/checkpoint.safetensors"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: checkpoint) && Date() < deadline { usleep(500) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed + "/model.safetensors"), "killed before the end")
        let resumedAt = try SafetensorsReader(checkpoint).metadata["squeeze.step"]
        XCTAssertTrue(["5", "10"].contains(resumedAt), "the checkpoint left ends a stage (step \(resumedAt ?? "none"))")
        XCTAssertEqual(try squeeze(args + ["--out", killed]).status, 0)
        let a = try Data(contentsOf: URL(fileURLWithPath: whole + "/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: killed + "/model.safetensors"))
        XCTAssertEqual(a, b)
        let logA = try String(contentsOfFile: whole + "/train_log.csv", encoding: .utf8)
        XCTAssertEqual(try String(contentsOfFile: killed + "/train_log.csv", encoding: .utf8), logA)
        let rows = logA.split(separator: "\n")
        XCTAssertEqual(rows.count, 21, "header and 20 steps")
        let stages: [Substring] = Array(repeating: "0", count: 5) + Array(repeating: "1", count: 5) + Array(repeating: "2", count: 10)
        XCTAssertEqual(rows.dropFirst().map { $0.split(separator: ",")[1] }, stages)

        // The run evaluates: per-benchmark scores and Score_fine.
        let eval = try squeeze("eval", whole, "--benchmarks", "ocr,pope", "--samples", "2", "--format", "json", "--threads", "1")
        XCTAssertEqual(eval.status, 0, eval.err)
        let json = try JSONSerialization.jsonObject(with: Data(eval.out.utf8)) as! [String: Any]
        XCTAssertEqual((json["benchmarks"] as! [String: Any]).keys.sorted(), ["ocr", "pope"])
        XCTAssertNotNil(json["score_fine"] as? Double)
        XCTAssertNotNil(json["score_fine_standard_error"] as? Double)
        XCTAssertNotNil((json["benchmarks"] as! [String: [String: Any]])["pope"]?["standard_error"] as? Double)
        XCTAssertEqual(try squeeze("eval", folder.path).status, 2, "no run there")
        let inspected = try squeeze("inspect", whole + "/model.safetensors")
        XCTAssertEqual(inspected.status, 0, inspected.err)
        XCTAssertTrue(inspected.out.contains("a multimodal run: preset tiny"), inspected.out)
        // Training-free: another variant at inference, against the run itself as the baseline.
        let tf = try squeeze("eval", whole, "--benchmarks", "ocr", "--samples", "2", "--format", "json", "--threads", "1",
                             "--variant", "mask-vv@from:1", "--baseline", killed)
        XCTAssertEqual(tf.status, 0, tf.err)
        let tfJSON = try JSONSerialization.jsonObject(with: Data(tf.out.utf8)) as! [String: Any]
        XCTAssertTrue((tfJSON["variant"] as! String).hasPrefix("mask-vv@from:1 (training-free"))
        XCTAssertNotNil(tfJSON["baseline_score_fine"] as? Double)
        // A warm start: a run that starts from the trained weights (here for 0 steps, so they pass through unchanged).
        let ft = folder.appendingPathComponent("ft").path
        XCTAssertEqual(try squeeze("train", "--finetune-from", whole, "--variant", "skip-vattn-ffn@from:1", "--steps", "0", "--out", ft).status, 0)
        let base = try SafetensorsReader(whole + "/model.safetensors"), tuned = try SafetensorsReader(ft + "/model.safetensors")
        XCTAssertEqual(tuned.bytes("model.image_newline"), base.bytes("model.image_newline"))
        XCTAssertEqual(tuned.bytes("model.layers.3.mlp.down_proj.weight"), base.bytes("model.layers.3.mlp.down_proj.weight"))
        XCTAssertNotNil(tuned.bytes("model.light_mlp_layers.1.fc1.weight"), "the variant's new modules are there")
        let untrained = try squeeze("eval", whole, "--variant", "skip-vattn-ffn@from:1", "--samples", "1")
        XCTAssertEqual(untrained.status, 2)
        XCTAssertTrue(untrained.err.contains("never trained"), untrained.err)
    }

    /// A sweep killed with SIGKILL mid-run and started again completes every run exactly once:
    /// complete runs are not redone, the interrupted one resumes, no file is left corrupt or half
    /// written. A run that fails does not stop the others, and the sweep ends with status 1.
    func testKilledSweepResumesAndFailedRunsDoNotStopIt() throws {
        let store = folder.appendingPathComponent("store").path, results = folder.appendingPathComponent("results").path
        let manifest = folder.appendingPathComponent("sweep.yaml").path
        try """
            store: \(store)
            results: \(results)
            preset: tiny
            vision: {grid: 4, crops: 2}
            training: {stage1_steps: 2, steps: 30, batch_size: 2, checkpoint_every: 1}
            evaluation: {benchmarks: [pope, ocr], samples: 2}
            baselines: {base: {variant: baseline}}
            sweep:
              variant: [baseline, skip-vattn@from:2, 'proxyv(r=2)@from:1', mask-vv@from:2]
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let dry = try squeeze("sweep", manifest, "--dry-run")
        XCTAssertEqual(dry.status, 0, dry.err)
        let lines = dry.out.split(separator: "\n").dropFirst(2)
        let ids = lines.map { String($0.prefix(16)) }
        // Where each run's model trains: work/<training id>.
        let models = lines.map { line in String(line.components(separatedBy: " · model ").last!.prefix(16)) }
        XCTAssertEqual(ids.count, 4)
        XCTAssertEqual(try squeeze("sweep", folder.appendingPathComponent("missing.yaml").path).status, 2)

        let process = Process()
        process.executableURL = Self.binary
        process.arguments = ["sweep", manifest, "--threads", "1"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Kill once the first run is complete and the second has checkpointed.
        let first = "\(store)/\(ids[0]).h5", secondCheckpoint = "\(store)/work/\(models[1])/checkpoint.safetensors"
        let deadline = Date().addingTimeInterval(300)
        while !(FileManager.default.fileExists(atPath: first) && FileManager.default.fileExists(atPath: secondCheckpoint)) && Date() < deadline { usleep(2_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        usleep(1_500_000)   // the orphaned worker notices within half a second and exits
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(store)/\(ids[1]).h5"), "the second run was interrupted, so the rerun resumes it")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(store)/\(ids[3]).h5"), "killed before the end")
        let firstStarted = try HDF5File(path: first, mode: .readOnly).attribute("started")

        // The third run cannot create its work directory: it fails, the others complete.
        let blocker = "\(store)/work/\(models[2])"
        try? FileManager.default.removeItem(atPath: blocker)
        try "in the way".write(toFile: blocker, atomically: true, encoding: .utf8)
        let failing = try squeeze("sweep", manifest, "--threads", "1")
        XCTAssertEqual(failing.status, 1, failing.err)
        XCTAssertTrue(failing.out.contains("3 of 4 runs complete, 1 failed"), failing.out)
        XCTAssertTrue(failing.out.contains("\(ids[2])"), failing.out)

        try FileManager.default.removeItem(atPath: blocker)
        let rerun = try squeeze("sweep", manifest, "--threads", "1")
        XCTAssertEqual(rerun.status, 0, rerun.out + rerun.err)
        XCTAssertTrue(rerun.out.contains("4 runs: 3 complete"), rerun.out)
        XCTAssertTrue(rerun.out.contains("table4_proxyv.csv"), rerun.out)
        XCTAssertEqual(try HDF5File(path: first, mode: .readOnly).attribute("started"), firstStarted, "the complete run was not redone")
        let files = try FileManager.default.contentsOfDirectory(atPath: store).filter { !["work", "logs"].contains($0) }
        XCTAssertEqual(Set(files), Set(ids.map { "\($0).h5" }), "one file per run, no temporary files")
        for id in ids {
            let file = try HDF5File(path: "\(store)/\(id).h5", mode: .readOnly)
            XCTAssertEqual(try file.attribute("status"), "complete")
            XCTAssertEqual(try file.attribute("run_id"), id)
            // Its prefill timed in turn with the baseline graph's: a ratio and its spread.
            let (low, median, high) = (try file.numberAttribute("prefill_time_ratio_min", on: "timing"),
                                       try file.numberAttribute("prefill_time_ratio_median", on: "timing"), try file.numberAttribute("prefill_time_ratio_max", on: "timing"))
            XCTAssertTrue(0 < low && low <= median && median <= high, "\(low) \(median) \(high)")
        }
        // The interrupted run resumed: its training log has every step once.
        let log = try HDF5File(path: "\(store)/\(ids[1]).h5", mode: .readOnly).readDoubles("training/step").values
        XCTAssertEqual(log, (0..<32).map(Double.init))

        // Evaluated again on more samples into another store, reusing this store's trained
        // models: new runs, nothing trained.
        let again = folder.appendingPathComponent("again.yaml").path, store2 = folder.appendingPathComponent("store2").path
        try (try String(contentsOfFile: manifest, encoding: .utf8))
            .replacingOccurrences(of: "store: \(store)", with: "store: \(store2)\nmodels: [\(store)]")
            .replacingOccurrences(of: "samples: 2", with: "samples: 3").write(toFile: again, atomically: true, encoding: .utf8)
        let reevaluated = try squeeze("sweep", again, "--threads", "1")
        XCTAssertEqual(reevaluated.status, 0, reevaluated.out + reevaluated.err)
        XCTAssertTrue(reevaluated.out.contains("4 runs: 0 complete"), reevaluated.out)
        let trainedAgain = try FileManager.default.contentsOfDirectory(atPath: store2 + "/work").filter { !$0.hasSuffix(".lock") }
        XCTAssertEqual(trainedAgain, [], "no model trained again")

        // A mistyped store is bad input: status 2, and the reports stay as they were.
        let table = try String(contentsOfFile: results + "/table4_proxyv.csv", encoding: .utf8)
        let mistyped = try squeeze("report", "--store", store + "-typo", "--out", results)
        XCTAssertEqual(mistyped.status, 2, mistyped.err)
        XCTAssertTrue(mistyped.err.contains("\(store)-typo: no run store there"), mistyped.err)
        XCTAssertEqual(try String(contentsOfFile: results + "/table4_proxyv.csv", encoding: .utf8), table)
    }

    /// A sweep that finds a run held by another process neither runs it nor touches its files:
    /// its log stays as the holder wrote it, and nothing of the losing sweep is left behind.
    func testASweepThatDoesNotHoldARunLeavesItsLogAlone() throws {
        let store = folder.appendingPathComponent("store").path, manifest = folder.appendingPathComponent("one.yaml").path
        try """
            store: \(store)
            results: \(folder.appendingPathComponent("results").path)
            preset: tiny
            training: {stage1_steps: 1, steps: 1, batch_size: 2}
            evaluation: {benchmarks: [ocr], samples: 1}
            sweep: {variant: [baseline]}
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let id = String(try squeeze("sweep", manifest, "--dry-run").out.split(separator: "\n")[2].prefix(16))
        try FileManager.default.createDirectory(atPath: store + "/work", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: store + "/logs", withIntermediateDirectories: true)
        try "the holder's log\n".write(toFile: "\(store)/logs/\(id).log", atomically: true, encoding: .utf8)
        // Another process holds the run: this test, with the lock a worker takes (an
        // open-file-description lock, F_OFD_SETLK = 37), saying who it is.
        let descriptor = open("\(store)/work/\(id).lock", O_CREAT | O_RDWR, 0o644)
        defer { close(descriptor) }
        var lock = flock()
        (lock.l_type, lock.l_whence) = (Int16(F_WRLCK), Int16(SEEK_SET))
        XCTAssertEqual(fcntl(descriptor, 37, &lock), 0)
        _ = "the test's process\n".withCString { write(descriptor, $0, strlen($0)) }
        let status = try squeeze("sweep", manifest, "--status")
        XCTAssertTrue(status.out.contains("\(id)  running   baseline · seed 1 — the test's process"), status.out)
        let r = try squeeze("sweep", manifest, "--no-report", "--threads", "1")
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.out.contains("another sweep is running it"), r.out)
        XCTAssertEqual(try String(contentsOfFile: "\(store)/logs/\(id).log", encoding: .utf8), "the holder's log\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/logs"), ["\(id).log"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(store)/\(id).h5"))
    }

    /// The benchmark's FLOPs are the analytic count, and the products that ran add up to it.
    func testBenchTrainReportsThroughputAsJSON() throws {
        let r = try squeeze("bench", "train", "--model", "tiny", "--batch-size", "2", "--sequence-length", "16",
                            "--reps", "1", "--format", "json")
        XCTAssertEqual(r.status, 0, r.err)
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let result = (json["results"] as! [[String: Any]])[1]
        let extra = result["extra"] as! [String: Double]
        XCTAssertGreaterThan(extra["tokens_per_second"]!, 0)
        XCTAssertEqual(extra["counted_over_analytic_flops"]!, 1)
        XCTAssertGreaterThan(result["gflops_per_second"] as! Double, 0)
    }
}

/// Raw tensor bytes of a safetensors file, read independently of Squeeze's own reader.
struct SafetensorsReader {
    let header: [String: Any], data: Data, start: Int
    init(_ path: String) throws {
        data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + n)) as! [String: Any]
        start = 8 + n
    }
    var metadata: [String: String] { header["__metadata__"] as? [String: String] ?? [:] }
    func bytes(_ name: String) -> Data? {
        guard let entry = header[name] as? [String: Any], let offsets = entry["data_offsets"] as? [Int] else { return nil }
        return data.subdata(in: start + offsets[0]..<start + offsets[1])
    }
}
