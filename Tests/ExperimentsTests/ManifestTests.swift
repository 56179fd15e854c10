import Experiments
import Foundation
import TestSupport
import XCTest

final class ManifestTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-manifest-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func write(_ name: String, _ text: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The error a manifest gets, as `file:line:column: message`.
    func error(_ text: String, file: String = "m.yaml") throws -> String {
        let path = try write(file, text)
        do {
            _ = try Manifest(path: path)
        } catch let e as ManifestError {
            return "\((e.file as NSString).lastPathComponent):\(e.line):\(e.column): \(e.message)"
        }
        XCTFail("manifest was accepted:\n\(text)")
        return ""
    }

    func testSweepExpandsTheGridOnceEachWithBaselinesAndBasesFirst() throws {
        let m = try Manifest(path: write("m.yaml", """
            preset: tiny
            training: {steps: 7}
            baselines:
              base: {variant: baseline}
            sweep:
              variant: [baseline, skip-vattn, 'proxyv(r=2)']
              schedule: ['from:1', 'from:2']
              mode: [full, ft]
              seed: [1, 2]
            """))
        // Per seed: baseline once (its schedules and modes collapse), 2 variants × 2 schedules × 2 modes.
        XCTAssertEqual(m.runs.count, 2 * (1 + 2 * 2 * 2))
        XCTAssertEqual(Set(m.runs.map(\.id)).count, m.runs.count)
        XCTAssertTrue(m.runs.allSatisfy { $0.spec.steps == 7 && $0.spec.preset == "tiny" })
        XCTAssertEqual(Set(m.runs.map(\.spec.variant)), ["baseline", "skip-vattn@from:1", "skip-vattn@from:2", "proxyv(r=2)@from:1", "proxyv(r=2)@from:2"])
        // Every run is measured against its seed's baseline; an FT run trains its baseline's stages
        // itself, so it waits for nothing.
        for run in m.runs {
            let baseline = m.runs.first { $0.spec.isBaseline && $0.spec.seed == run.spec.seed }!
            XCTAssertEqual(run.baselineID, baseline.id)
            XCTAssertEqual(run.requires, [])
        }
        // A run's id is FNV-1a (64 bits) of its whole configuration as sorted JSON, computed here
        // by Python; the code fingerprint is part of it.
        let spec = m.runs[1].spec
        let hashed = try runPython("""
            import sys
            h = 0xcbf29ce484222325
            for b in sys.argv[1].encode(): h = ((h ^ b) * 0x100000001b3) % 2**64
            print(f"{h:016x}")
            """, arguments: [spec.json]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(spec.id, hashed)
        let json = try JSONSerialization.jsonObject(with: Data(spec.json.utf8)) as! [String: Any]
        XCTAssertEqual(json["code"] as? String, RunSpec.code)
        for key in ["patch", "features", "lossWeights", "languageLearningRate", "grid", "crops", "turns", "steps"] {
            XCTAssertNotNil(json[key], "\(key) is part of the id")
        }
    }

    /// Every setting of the training configuration can be set (and swept), and changes the id.
    func testEverySettingOfTheRunEntersItsId() throws {
        let base = try Manifest(path: write("b.yaml", "preset: tiny\n")).runs[0]
        let changed = try Manifest(path: write("c.yaml", """
            preset: tiny
            vision: {patch: 6, features: 32}
            training: {loss_weights: {grounding: 4, pope: 0.5}, language_learning_rate: 2e-3}
            """)).runs[0]
        XCTAssertEqual(changed.spec.lossWeights, ["grounding": 4, "pope": 0.5])
        let config = changed.spec.trainingConfig(checkpointEvery: 1)
        XCTAssertEqual(config.patch, 6)
        XCTAssertEqual(config.features, 32)
        XCTAssertEqual(config.lossWeights, ["grounding": 4, "pope": 0.5])
        XCTAssertEqual(config.languageLearningRate, 2e-3)
        XCTAssertNotEqual(changed.id, base.id)
        var other = base.spec
        other.code = "model 0"
        XCTAssertNotEqual(other.id, base.id, "another code fingerprint, another run")
        XCTAssertThrowsError(try Manifest(path: write("d.yaml", "preset: tiny\ntraining: {loss_weights: {groundng: 4}}\n"))) { error in
            XCTAssertTrue("\(error)".contains("unknown task 'groundng'"), "\(error)")
        }
    }

    func testExtendsOverridesTheBaseAndAnyFieldCanBeSwept() throws {
        _ = try write("base.yaml", """
            preset: tiny
            seed: 3
            training: {steps: 5, batch_size: 2}
            evaluation: {benchmarks: [pope, count], samples: 4}
            sweep:
              variant: [baseline, mask-vv@from:2]
            """)
        let m = try Manifest(path: write("child.yaml", """
            extends: base.yaml
            training: {batch_size: 3, turns: 2, language_steps: 7}
            sweep:
              training.steps: [5, 9]
            """))
        XCTAssertEqual(m.runs.count, 4)
        let configs = m.runs.map { $0.spec.trainingConfig(checkpointEvery: 1) }
        XCTAssertTrue(configs.allSatisfy { $0.turns == 2 && $0.languageSteps == 7 })
        var ft = m.runs[0].spec
        ft.mode = .ft
        let (ftConfig, baseConfig) = (ft.trainingConfig(checkpointEvery: 1), ft.base!.trainingConfig(checkpointEvery: 1))
        XCTAssertEqual(ftConfig.variantStage, 2, "FT trains the variant in stage 2 only")
        XCTAssertEqual([ftConfig.languageSteps, ftConfig.stage1Steps, ftConfig.stage2Steps], [baseConfig.languageSteps, baseConfig.stage1Steps, baseConfig.stage2Steps],
                       "FT has its baseline's budget")
        XCTAssertNotEqual(ft.code, ft.base!.code, "an FT run made by the earlier finetuning is not taken as complete")
        // What a run evaluates: runs that differ only in their evaluation share a trained model;
        // a TF run's is its baseline's.
        var moreSamples = m.runs[0].spec
        (moreSamples.samples, moreSamples.benchmarks) = (400, ["ocr"])
        XCTAssertNotEqual(moreSamples.id, m.runs[0].spec.id)
        XCTAssertEqual(moreSamples.trainingID, m.runs[0].spec.trainingID)
        var tf = m.runs[0].spec
        (tf.variant, tf.mode) = ("mask-vv@from:1", .tf)
        XCTAssertEqual(tf.trainingID, tf.base!.trainingID)
        XCTAssertNotEqual(ft.trainingID, ft.base!.trainingID)
        XCTAssertTrue(m.runs.allSatisfy { $0.spec.seed == 3 && $0.spec.batchSize == 3 && $0.spec.benchmarks == ["pope", "count"] && $0.spec.samples == 4 })
        XCTAssertEqual(Set(m.runs.map(\.spec.steps)), [5, 9])
        XCTAssertEqual(m.name, "child")

        // An axis of whole settings: TF masking at two depths beside a fully trained ProxyV.
        let runs = try Manifest(path: write("runs.yaml", """
            preset: tiny
            sweep:
              runs:
                - {variant: 'mask-vv@from:1', mode: tf}
                - {variant: 'mask-vv@from:3', mode: tf}
                - {variant: 'proxyv(r=2)@from:2', training: {steps: 3}}
            """)).runs
        XCTAssertEqual(runs.map(\.spec.label), ["baseline", "mask-vv@from:1 [TF]", "mask-vv@from:3 [TF]", "proxyv(r=2)@from:2"])
        XCTAssertEqual(runs.last?.spec.steps, 3)
        XCTAssertTrue(try error("preset: tiny\nsweep:\n  runs: [{variant: baseline, colour: red}]\n").hasPrefix("m.yaml:3:30: unknown setting 'colour' in sweep.runs"))
    }

    func testBadManifestsAreRejectedWithTheirPlace() throws {
        XCTAssertEqual(try error("preset: tiny\ntrainig: {steps: 3}\n").prefix(13), "m.yaml:2:1: u")
        XCTAssertTrue(try error("preset: tiny\ntrainig: {steps: 3}\n").contains("unknown key 'trainig'"))
        XCTAssertTrue(try error("preset: tiny\ntraining: {stepz: 3}\n").hasPrefix("m.yaml:2:12: unknown key 'stepz' in training"))
        XCTAssertTrue(try error("preset: tiny\ntraining: {steps: many}\n").hasPrefix("m.yaml:2:19: training.steps: expected an integer"))
        XCTAssertTrue(try error("preset: tiny\ntraining: {steps: 0}\n").contains("from 1 to 10000000, got 0"))
        XCTAssertTrue(try error("preset: tiny\ntraining: {turns: 0}\n").hasPrefix("m.yaml:2:19: training.turns: expected an integer from 1 to 64, got 0"))
        // Bounds before anything is allocated or run.
        XCTAssertTrue(try error("preset: tiny\ntraining: {steps: 9223372036854775807}\n").hasPrefix("m.yaml:2:19: training.steps: expected an integer from 1 to 10000000"))
        XCTAssertTrue(try error("preset: tiny\nevaluation: {samples: 9223372036854775807}\n").contains("evaluation.samples: expected an integer from 1 to 100000"))
        // A layer past the last (tiny has 4) and r not dividing the grid (tiny's is 4).
        XCTAssertTrue(try error("preset: tiny\nsweep:\n  variant: [baseline, 'skip-vattn@from:9']\n").hasPrefix("m.yaml:3:23: variant 'skip-vattn@from:9'"))
        XCTAssertTrue(try error("preset: tiny\nvariant: 'proxyv(r=3)@from:1'\n").hasPrefix("m.yaml:2:10: variant 'proxyv(r=3)@from:1'"))
        XCTAssertTrue(try error("preset: tiny\nevaluation:\n  benchmarks: [pope, docvqa]\n").hasPrefix("m.yaml:3:22: evaluation.benchmarks: unknown benchmark 'docvqa'"))
        XCTAssertTrue(try error("preset: tiny\nvariant: 'proxyv(r=2)@from:1'\nmode: tf\n").hasPrefix("m.yaml:3:7: mode tf"))
        XCTAssertTrue(try error("preset: huge\n").hasPrefix("m.yaml:1:9: unknown preset 'huge'"))
        XCTAssertTrue(try error("preset: tiny\nvariant: 'proxyv(r=2'\n").hasPrefix("m.yaml:2:10: "))
        XCTAssertTrue(try error("preset: tiny\nsweep:\n  seed: 3\n").hasPrefix("m.yaml:3:9: sweep.seed: expected a non-empty list"))
        XCTAssertTrue(try error("preset: tiny\nsweep:\n  colour: [red]\n").hasPrefix("m.yaml:3:3: unknown setting 'colour'"))
        XCTAssertTrue(try error("preset: tiny\nbaseline: other\nbaselines: {base: {variant: baseline}}\n").hasPrefix("m.yaml:2:11: baseline 'other'"))
        XCTAssertTrue(try error("preset: tiny\nsweep: [\n").hasPrefix("m.yaml:3:1: not valid YAML"))
        XCTAssertTrue(try error("extends: nowhere.yaml\n").hasPrefix("m.yaml:1:10: extends 'nowhere.yaml': no such manifest"))
        // An error in the base is named in the base.
        _ = try write("base.yaml", "preset: tiny\nvision: {crops: 7}\n")
        XCTAssertEqual(try error("extends: base.yaml\nseed: 2\n"), "base.yaml:2:17: vision.crops: expected 1 (base view) to 5 crops, got 7")
    }

    /// The repository's manifests (the quickstart and one per paper table or figure) are valid.
    func testShippedManifestsExpand() throws {
        let experiments = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Experiments").standardizedFileURL
        let names = try FileManager.default.contentsOfDirectory(atPath: experiments.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertTrue(Set(names).isSuperset(of: ["quickstart.yaml", "tiny.yaml", "table1.yaml", "table2.yaml", "table4.yaml", "table5.yaml", "table6.yaml", "figure2.yaml"]))
        for name in names {
            let m = try Manifest(path: experiments.appendingPathComponent(name).path)
            XCTAssertFalse(m.runs.isEmpty, name)
        }
        // The quickstart trains one FT run; every other run evaluates the shipped seed-1 `small` baseline.
        let quickstart = try Manifest(path: experiments.appendingPathComponent("quickstart.yaml").path)
        XCTAssertEqual(Set(quickstart.runs.filter { $0.spec.mode != .ft }.map(\.spec.trainingID)).count, 1)
        XCTAssertEqual(quickstart.runs.filter { $0.spec.mode == .ft }.count, 1)
        XCTAssertEqual(quickstart.modelStores, ["Results/store"])
        let figure2 = try Manifest(path: experiments.appendingPathComponent("figure2.yaml").path)
        XCTAssertTrue(figure2.runs.contains { $0.spec.trainingID == quickstart.runs[0].spec.trainingID }, "figure 2's seed-1 baseline")
    }
}
