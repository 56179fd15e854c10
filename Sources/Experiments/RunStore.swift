import Foundation
import HDF5
import Kernels

/// The run store: one HDF5 file per run, `<directory>/<id>.h5`, written under a temporary name
/// and renamed when complete, so a file with the run's name is always a whole run. Training state
/// lives in `work/<training id>/` (resumable checkpoints, the trained model that TF runs and
/// evaluations on other samples reuse; `RunSpec.trainingID`); each run's log in `logs/<id>.log`.
public struct RunStore {
    public static let schemaVersion = "1"
    public let directory: String
    /// Other stores whose trained models this one's runs reuse (read only).
    public let modelStores: [String]

    public init(directory: String, modelStores: [String] = []) { self.directory = directory; self.modelStores = modelStores }

    /// The directory of a finished trained model (one with `model.safetensors`): this store's,
    /// else the first of `modelStores` that has it; nil if none has.
    public func trainedModel(_ trainingID: String) -> String? {
        ([self] + modelStores.map { RunStore(directory: $0) }).map { $0.workDirectory(of: trainingID) }
            .first { FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent("model.safetensors")) }
    }

    public func path(of id: String) -> String { (directory as NSString).appendingPathComponent("\(id).h5") }
    public func workDirectory(of id: String) -> String { (directory as NSString).appendingPathComponent("work/\(id)") }
    public func logPath(of id: String) -> String { (directory as NSString).appendingPathComponent("logs/\(id).log") }

    /// The complete run with this id and configuration, read back; nil if missing, incomplete,
    /// unreadable or written for another configuration.
    public func completed(id: String, config: String) -> StoredRun? {
        guard FileManager.default.fileExists(atPath: path(of: id)), let run = try? StoredRun(path: path(of: id)),
              run.id == id, run.config == config else { return nil }
        return run
    }

    /// Every complete run in the store (files that do not read back are left out).
    public func runs() -> [StoredRun] { scan().runs }

    /// Every run file in the store: the complete runs, and the files that do not read back as one
    /// with the reason.
    public func scan() -> (runs: [StoredRun], unreadable: [(path: String, reason: String)]) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var runs: [StoredRun] = [], unreadable: [(path: String, reason: String)] = []
        for name in names.filter({ $0.hasSuffix(".h5") }).sorted() {
            let path = (directory as NSString).appendingPathComponent(name)
            do { runs.append(try StoredRun(path: path)) } catch { unreadable.append((path, "\(error)")) }
        }
        return (runs, unreadable)
    }

    /// Writes a run's file: to `<id>.h5.partial-<pid>`, synced, read back and checked, then
    /// renamed over `<id>.h5` (`DurableWrite`): a failure leaves the old file as it was.
    public func write(_ record: RunRecord) throws {
        try DurableWrite.makeDirectory(directory)
        try DurableWrite.replace(path(of: record.id), write: { try writeFile(record, to: $0) }, verify: { temporary in
            guard let back = try? StoredRun(path: temporary), back.id == record.id, back.config == record.config,
                  back.benchmarks.count == record.benchmarks.count else {
                throw HDF5File.Failure(path: path(of: record.id), what: "did not read back as written")
            }
        })
    }

    /// Temporary files that writers killed mid-write left behind.
    public func removeStalePartials(of id: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("\(id).h5.partial-") {
            try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
        }
    }

    private func writeFile(_ r: RunRecord, to path: String) throws {
        let file = try HDF5File(path: path, mode: .create)
        let iso = ISO8601DateFormatter()
        let root: [(String, String)] = [
            ("schema_version", RunStore.schemaVersion), ("run_id", r.id), ("config", r.config), ("model", r.model),
            ("variant", r.variant), ("mode", r.mode), ("seed", String(r.seed)), ("baseline_run", r.baselineID ?? ""),
            ("source", r.source), ("squeeze_version", SqueezeVersion.version), ("git_revision", SqueezeVersion.gitRevision),
            ("machine", SqueezeVersion.machine), ("started", iso.string(from: r.started)), ("finished", iso.string(from: r.finished)),
            ("flops_convention", "\(AccountingRecord.convention.rawValue): dense attention pairs, decoder layers only"),
        ]
        for (k, v) in root { try file.setAttribute(k, v) }

        try file.createGroup("scores")
        try file.setAttribute("score_fine", r.scoreFine, on: "scores")
        if let se = r.scoreFineStandardError { try file.setAttribute("score_fine_standard_error", se, on: "scores") }
        for b in r.benchmarks {
            let group = "scores/\(b.name)"
            try file.createGroup(group)
            try file.setAttribute("headline", b.headline, on: group)
            if let se = b.standardError { try file.setAttribute("standard_error", se, on: group) }
            try file.setAttribute("fine_grained", b.fineGrained ? 1 : 0, on: group)
            for (metric, value) in b.scores { try file.setAttribute(metric, value, on: group) }
            try file.setAttribute("metrics", b.scores.keys.sorted().joined(separator: ","), on: group)
            if !b.perSample.isEmpty {
                try file.setAttribute("per_sample_metric", b.perSampleMetric, on: group)
                try file.write(b.perSample, shape: [b.perSample.count], at: "\(group)/per_sample")
                try file.write(strings: b.predictions, at: "\(group)/predictions")
                try file.write(b.prefillSeconds, shape: [b.prefillSeconds.count], at: "\(group)/prefill_seconds")
            }
        }

        let a = r.accounting
        try file.createGroup("accounting")
        for (k, v) in [("flops", a.flops), ("macs", a.macs), ("baseline_flops", a.baselineFlops), ("flops_reduced_pct", a.reducedPercent),
                       ("executed_flops", a.executedFlops), ("parameters", a.parameters), ("kv_cache_bytes", a.kvCacheBytes)] {
            try file.setAttribute(k, v, on: "accounting")
        }
        try file.setAttribute("operations", a.operations.joined(separator: ","), on: "accounting")
        try file.write(a.perLayerMACs.flatMap { $0 }, shape: [a.perLayerMACs.count, a.operations.count], at: "accounting/per_layer_macs")

        try file.createGroup("timing")
        for (k, v) in r.timing { try file.setAttribute(k, v, on: "timing") }
        try file.createGroup("training")
        for (k, v) in r.curves { try file.write(v, shape: [v.count], at: "training/\(k)") }
        // Last, so that a file is complete only if everything before was written.
        try file.setAttribute("status", "complete")
        try file.close()
    }
}

/// A run store that cannot be used.
public struct StoreError: InputError {
    public let file: String, problem: String
    public init(file: String, problem: String) { self.file = file; self.problem = problem }
    public var description: String { "\(file): \(problem)" }
}

/// A complete run read back from the store: what reports need.
public struct StoredRun {
    public let path: String
    public let id: String, config: String, model: String, variant: String, mode: String, seed: String
    public let baselineID: String?
    public let source: String
    public let scoreFine: Double
    /// Benchmark → (headline, every metric).
    public let benchmarks: [String: (headline: Double, scores: [String: Double])]
    /// Benchmark → each evaluated sample's score and prediction, in sample order (empty for
    /// imported results): what paired comparisons redraw.
    public let perSample: [String: (values: [Double], predictions: [String])]
    public let flops: Double, baselineFlops: Double, parameters: Double, kvCacheBytes: Double
    public let timing: [String: Double]
    /// Provenance: the checkout's revision, the machine ("" where the file predates its
    /// recording) and the start and end (ISO 8601).
    public let gitRevision: String, machine: String, started: String, finished: String
    /// The run's configuration, when Squeeze ran it (nil for imported results).
    public var spec: RunSpec? { try? JSONDecoder().decode(RunSpec.self, from: Data(config.utf8)) }
    public var flopsReducedPercent: Double { baselineFlops > 0 ? 100 * (1 - flops / baselineFlops) : 0 }

    public init(path: String) throws {
        self.path = path
        let file = try HDF5File(path: path, mode: .readOnly)
        guard try file.attribute("status") == "complete" else { throw HDF5File.Failure(path: path, what: "run is not complete") }
        guard try file.attribute("schema_version") == RunStore.schemaVersion else {
            throw HDF5File.Failure(path: path, what: "schema version \(try file.attribute("schema_version")), expected \(RunStore.schemaVersion)")
        }
        (id, config, model) = (try file.attribute("run_id"), try file.attribute("config"), try file.attribute("model"))
        (variant, mode, seed, source) = (try file.attribute("variant"), try file.attribute("mode"), try file.attribute("seed"), try file.attribute("source"))
        let baseline = try file.attribute("baseline_run")
        baselineID = baseline.isEmpty ? nil : baseline
        (gitRevision, started, finished) = (try file.attribute("git_revision"), try file.attribute("started"), try file.attribute("finished"))
        machine = (try? file.attribute("machine")) ?? ""
        scoreFine = try file.numberAttribute("score_fine", on: "scores")
        var benchmarks: [String: (Double, [String: Double])] = [:], perSample: [String: ([Double], [String])] = [:]
        for name in try file.members(of: "scores") {
            let group = "scores/\(name)"
            var scores: [String: Double] = [:]
            for metric in try file.attribute("metrics", on: group).split(separator: ",").map(String.init) {
                scores[metric] = try file.numberAttribute(metric, on: group)
            }
            benchmarks[name] = (try file.numberAttribute("headline", on: group), scores)
            if file.contains("\(group)/per_sample") {
                perSample[name] = (try file.readDoubles("\(group)/per_sample").values, try file.readStrings("\(group)/predictions"))
            }
        }
        (self.benchmarks, self.perSample) = (benchmarks, perSample)
        flops = try file.numberAttribute("flops", on: "accounting")
        baselineFlops = try file.numberAttribute("baseline_flops", on: "accounting")
        parameters = try file.numberAttribute("parameters", on: "accounting")
        kvCacheBytes = try file.numberAttribute("kv_cache_bytes", on: "accounting")
        var timing: [String: Double] = [:]
        for k in ["train_seconds", "eval_seconds", "prefill_seconds_mean", "answer_seconds_mean", "prefill_seconds_median",
                  "baseline_prefill_seconds_median", "prefill_time_ratio_median", "prefill_time_ratio_min", "prefill_time_ratio_max"] {
            if let v = try? file.numberAttribute(k, on: "timing") { timing[k] = v }
        }
        self.timing = timing
    }
}

/// The version and revision written into every run file.
public enum SqueezeVersion {
    public static let version = "0.2.0"

    /// This executable's path (sweep workers run it again).
    public static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// The git revision of the checkout this executable was built in (it lives in its
    /// `.build/`), or "unknown".
    public static let gitRevision: String = {
        let process = Process(), pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", (executable as NSString).deletingLastPathComponent, "rev-parse", "--short=12", "HEAD"]
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return "unknown" }
        process.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return process.terminationStatus == 0 && !out.isEmpty ? out : "unknown"
    }()

    /// The CPU (as lscpu names it), its cores and OpenBLAS's kernel: what a run's floats depend on.
    public static let machine: String = {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores, OpenBLAS \(BLAS.coreName) kernel"
    }()
}
