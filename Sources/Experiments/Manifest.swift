import Benchmarks
import Decoder
import Foundation
import Kernels
import LayerGraph
import Training
import Yams

/// A manifest that cannot be used: where, and what was expected there.
public struct ManifestError: InputError {
    public let file: String, line: Int, column: Int, message: String
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// A value as written in a manifest file, with its place.
struct Located {
    let node: Node
    let file: String

    var line: Int { node.mark?.line ?? 1 }
    var column: Int { node.mark?.column ?? 1 }
    func error(_ message: String) -> ManifestError { ManifestError(file: file, line: line, column: column, message: message) }

    /// A directory to write into: a path that is not an existing file.
    func directory() throws -> String {
        let path = try string(expected: "a directory")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw error("'\(path)' is a file; expected a directory to write into")
        }
        return path
    }
}

/// One run of a sweep: its resolved configuration and how it relates to the others.
public struct PlannedRun: Sendable {
    public let spec: RunSpec
    public var id: String { spec.id }
    /// The run its Score_fine Rel is measured against (nil when the manifest names no baseline).
    public let baselineID: String?
    /// Runs that must be complete first (the trained baseline a TF run evaluates).
    public let requires: [String]
    public let checkpointEvery: Int
}

/// A sweep manifest (YAML): run settings that apply to every run, named baselines, and a sweep —
/// a grid over any run setting. `extends: other.yaml` starts from another manifest's settings.
///
///     preset: tiny
///     training: {steps: 80}
///     evaluation: {benchmarks: all, samples: 20}
///     baselines: {base: {variant: baseline}}
///     sweep:
///       variant: [baseline, skip-vattn, 'proxyv(r=2)']
///       schedule: ['from:1', 'from:2']
///       seed: [1, 2]
///       runs: [{}, {mode: ft}]      # an axis whose values set several settings at once
public struct Manifest {
    public let path: String
    public let name: String
    /// Where run files go, and where reports are written.
    public let store: String, results: String
    /// Other run stores whose trained models the runs reuse (`models:`), e.g. a shipped baseline.
    public let modelStores: [String]
    /// Runs at a time unless the command line says otherwise.
    public let jobs: Int
    /// Every run, each once, those another run requires first.
    public let runs: [PlannedRun]

    public init(path: String) throws {
        let file = try ManifestFile(path: path, seen: [])
        self.path = path
        name = try file.name.map { try $0.string(expected: "a name") } ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        store = try file.store.map { try $0.directory() } ?? "Results/store"
        results = try file.results.map { try $0.directory() } ?? "Results"
        modelStores = try file.models.map { try $0.directories() } ?? []
        jobs = try file.jobs.map { try $0.integer(atLeast: 1, atMost: 256) } ?? 1
        runs = try Manifest.expand(file)
    }

    /// The grid of the sweep over the settings, each combination resolved, checked and given its
    /// baseline; then the baselines and bases runs need, each run once.
    static func expand(_ file: ManifestFile) throws -> [PlannedRun] {
        // The grid's size before it is built: a few axes of many values would not fit in memory.
        let size = file.sweep.reduce(1.0) { $0 * Double($1.values.count) }
        if size > 100_000, let place = file.sweep.max(by: { $0.values.count < $1.values.count })?.values.first?.values.first {
            throw place.error("the sweep's grid has \(size < 1e18 ? String(Int(size)) : String(size)) combinations; at most 100000")
        }
        var combinations: [[String: Located]] = [[:]]
        for axis in file.sweep {
            combinations = combinations.flatMap { c in axis.values.map { c.merging($0, uniquingKeysWith: { $1 }) } }
        }
        var runs: [String: PlannedRun] = [:], order: [String] = []
        func add(_ run: PlannedRun, first: Bool = false) {
            guard runs[run.id] == nil else { return }
            runs[run.id] = run
            if first { order.insert(run.id, at: 0) } else { order.append(run.id) }
        }
        for combination in combinations {
            let settings = file.settings.merging(combination, uniquingKeysWith: { $1 })
            let draft = try Draft(settings)
            var baselineID: String?
            if let name = draft.baseline ?? file.baselines.first?.name {
                guard let overrides = file.baselines.first(where: { $0.name == name }) else {
                    throw settings["baseline"]!.error("baseline '\(name)' is not one of the manifest's baselines \(file.baselines.map(\.name))")
                }
                var reference = try Draft(settings.merging(overrides.settings, uniquingKeysWith: { $1 }))
                reference.spec.mode = .full
                baselineID = reference.spec.id
                if reference.spec.id != draft.spec.id {
                    add(PlannedRun(spec: reference.spec, baselineID: reference.spec.id, requires: [], checkpointEvery: reference.checkpointEvery))
                }
            }
            let base = draft.spec.base
            if let base { add(PlannedRun(spec: base, baselineID: baselineID, requires: [], checkpointEvery: draft.checkpointEvery)) }
            let requires = draft.spec.mode == .tf ? [base!.id] : []
            add(PlannedRun(spec: draft.spec, baselineID: baselineID, requires: requires, checkpointEvery: draft.checkpointEvery))
        }
        // Runs that others require go first, so that a pool taking runs in order rarely waits.
        let required = Set(runs.values.flatMap(\.requires))
        return order.filter { required.contains($0) }.map { runs[$0]! } + order.filter { !required.contains($0) }.map { runs[$0]! }
    }
}

/// The settings of one run before expansion's bookkeeping: a spec plus the settings that are not
/// part of a run's identity.
struct Draft {
    var spec: RunSpec
    var checkpointEvery = 50
    var baseline: String?

    /// Resolves settings over the preset's defaults and checks the result can run.
    init(_ settings: [String: Located]) throws {
        spec = try settings["preset"].map(ManifestFile.presetSpec) ?? RunSpec(preset: "small")!
        checkpointEvery = MultimodalRunConfig.preset(spec.preset)!.checkpointEvery
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) where key != "preset" {
            guard let field = Draft.fields[key] else { throw value.error("unknown setting '\(key)'") }
            try field.apply(key, value, &self)
        }
        if let schedule = settings["schedule"].flatMap({ $0.node.string }), !spec.isBaseline, !spec.variant.contains("@") {
            spec.variant += "@" + schedule
        }
        if spec.isBaseline { spec.mode = .full }
        try check(settings)
    }

    /// What the executor would refuse: a variant that does not compile for this model (a layer
    /// past the last, r not dividing the grid) or a TF run of a variant with untrained modules.
    private func check(_ settings: [String: Located]) throws {
        let place = settings["variant"] ?? settings["schedule"] ?? settings["preset"]
        func fail(_ message: String) -> Error {
            place?.error(message) ?? ManifestError(file: "manifest", line: 1, column: 1, message: message)
        }
        let decoder = LlamaConfig.presets[spec.preset]!
        do {
            let graph = try LayerGraph(spec: VariantSpec(spec.variant), layers: decoder.layers, hidden: decoder.hidden, grid: spec.grid, features: spec.features)
            if spec.mode == .tf, !VariantModules(graph: graph, hidden: decoder.hidden, seed: 0).parameters.isEmpty {
                throw (settings["mode"] ?? place)!.error("mode tf: variant '\(spec.variant)' adds modules that are never trained; use ft or full")
            }
        } catch let error as ManifestError {
            throw error
        } catch {
            throw fail("variant '\(spec.variant)' on preset \(spec.preset) (\(decoder.layers) layers, grid \(spec.grid)): \(error)")
        }
    }

    struct Field {
        let set: (Located, inout Draft) throws -> Void
        init(_ set: @escaping (Located, inout Draft) throws -> Void) { self.set = set }

        /// Sets the value; a problem is reported with the setting's name.
        func apply(_ key: String, _ value: Located, _ draft: inout Draft) throws {
            do { try set(value, &draft) } catch let e as ManifestError {
                throw ManifestError(file: e.file, line: e.line, column: e.column, message: "\(key): \(e.message)")
            }
        }
    }

    static let fields: [String: Field] = [
        "variant": Field { v, d in
            d.spec.variant = try v.string(expected: "a variant in the text form, e.g. 'proxyv(r=4)@from:2'").trimmingCharacters(in: .whitespaces)
            do { _ = try VariantSpec(d.spec.variant) } catch { throw v.error("\(error)") }
        },
        "schedule": Field { v, _ in
            let s = try v.string(expected: "a schedule such as 'from:2', 'layers:1..<3' or 'ratio:0.5'")
            do { _ = try VariantSpec("mask-vv@" + s) } catch { throw v.error("schedule '\(s)' is not one of from:L, layers:a..<b, layers:l,m,…, ratio:ρ") }
        },
        "mode": Field { v, d in d.spec.mode = try v.choice(RunMode.self) },
        "seed": Field { v, d in d.spec.seed = UInt64(try v.integer(atLeast: 0, atMost: Int(UInt32.max))) },
        "baseline": Field { v, d in d.baseline = try v.string(expected: "the name of a baseline") },
        "training.language_steps": Field { v, d in d.spec.languageSteps = try v.integer(atLeast: 0, atMost: 10_000_000) },
        "training.stage1_steps": Field { v, d in d.spec.stage1Steps = try v.integer(atLeast: 0, atMost: 10_000_000) },
        "training.steps": Field { v, d in d.spec.steps = try v.integer(atLeast: 1, atMost: 10_000_000) },
        "training.batch_size": Field { v, d in d.spec.batchSize = try v.integer(atLeast: 1, atMost: 4096) },
        "training.turns": Field { v, d in d.spec.turns = try v.integer(atLeast: 1, atMost: 64) },
        "training.language_learning_rate": Field { v, d in d.spec.languageLearningRate = try v.positive() },
        "training.stage1_learning_rate": Field { v, d in d.spec.stage1LearningRate = try v.positive() },
        "training.loss_weights": Field { v, d in d.spec.lossWeights = try v.lossWeights() },
        "training.learning_rate": Field { v, d in d.spec.learningRate = try v.positive() },
        "training.checkpoint_every": Field { v, d in d.checkpointEvery = try v.integer(atLeast: 1, atMost: 10_000_000) },
        "vision.grid": Field { v, d in d.spec.grid = try v.integer(atLeast: 1, atMost: 512) },
        "vision.patch": Field { v, d in d.spec.patch = try v.integer(atLeast: 1, atMost: 64) },
        "vision.features": Field { v, d in d.spec.features = try v.integer(atLeast: 1, atMost: 4096) },
        "vision.crops": Field { v, d in
            d.spec.crops = try v.integer(atLeast: 1)
            if d.spec.crops > 5 { throw v.error("expected 1 (base view) to 5 crops, got \(d.spec.crops)") }
        },
        "evaluation.benchmarks": Field { v, d in d.spec.benchmarks = try v.benchmarks() },
        "evaluation.samples": Field { v, d in d.spec.samples = try v.integer(atLeast: 1, atMost: 100_000) },
        "evaluation.split": Field { v, d in d.spec.split = try v.choice(Split.self) },
    ]
}

/// A manifest file read into flat settings (`training.steps`), its sweep axes and baselines,
/// after the file it extends.
struct ManifestFile {
    var settings: [String: Located] = [:]
    /// Axes of the grid; each value sets one setting, or several (`runs:` lists mappings).
    var sweep: [(key: String, values: [[String: Located]])] = []
    var baselines: [(name: String, settings: [String: Located])] = []
    var name: Located?, store: Located?, results: Located?, jobs: Located?, models: Located?

    static let sections = ["training", "vision", "evaluation"]
    static let topLevel = ["extends", "name", "store", "results", "models", "jobs", "sweep", "baselines", "preset", "variant", "schedule", "mode", "seed", "baseline"] + sections

    init(path: String, seen: Set<String>) throws {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard !seen.contains(absolute) else { throw ManifestError(file: path, line: 1, column: 1, message: "extends itself (a cycle of extends:)") }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ManifestError(file: path, line: 1, column: 1, message: "cannot read the manifest (missing, unreadable or not UTF-8)")
        }
        let root: Node
        do {
            root = try Yams.compose(yaml: text) ?? Node.mapping(.init([]))
        } catch let error as YamlError {
            throw ManifestFile.describe(error, file: path)
        }
        guard case let .mapping(mapping) = root else {
            throw Located(node: root, file: path).error("expected a mapping of settings at the top of the manifest")
        }
        if let extends = mapping["extends"] {
            let base = try Located(node: extends, file: path).string(expected: "the path of another manifest")
            let basePath = base.hasPrefix("/") ? base : ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(base)
            guard FileManager.default.fileExists(atPath: basePath) else {
                throw Located(node: extends, file: path).error("extends '\(base)': no such manifest (\(basePath))")
            }
            self = try ManifestFile(path: basePath, seen: seen.union([absolute]))
        }
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? "", at = Located(node: value, file: path)
            switch key {
            case "extends": continue
            case "name": name = at
            case "store": store = at
            case "results": results = at
            case "models": models = at
            case "jobs": jobs = at
            case "sweep": try readSweep(at)
            case "baselines": try readBaselines(at)
            default:
                guard ManifestFile.topLevel.contains(key) else {
                    throw Located(node: keyNode, file: path).error("unknown key '\(key)'; expected one of \(ManifestFile.topLevel.joined(separator: ", "))")
                }
                for (k, v) in try ManifestFile.flatten(key: key, at) { settings[k] = v }
            }
        }
    }

    /// `training: {steps: 5}` as `training.steps`, with unknown keys refused.
    static func flatten(key: String, _ value: Located) throws -> [(String, Located)] {
        guard sections.contains(key) else { return [(key, value)] }
        guard case let .mapping(m) = value.node else { throw value.error("\(key): expected a mapping of settings") }
        let known = Draft.fields.keys.filter { $0.hasPrefix(key + ".") }.map { String($0.dropFirst(key.count + 1)) }.sorted()
        return try m.map { k, v in
            let name = k.string ?? ""
            guard known.contains(name) else {
                throw Located(node: k, file: value.file).error("unknown key '\(name)' in \(key); expected one of \(known.joined(separator: ", "))")
            }
            return ("\(key).\(name)", Located(node: v, file: value.file))
        }
    }

    /// Settings with their checks run on a scratch run, so that a bad value is named where written.
    static func flattenChecked(_ value: Located, context: String) throws -> [String: Located] {
        guard case let .mapping(m) = value.node else { throw value.error("\(context): expected a mapping of run settings") }
        var out: [String: Located] = [:]
        for (k, v) in m {
            let key = k.string ?? ""
            guard Draft.fields[key] != nil || key == "preset" || sections.contains(key) else {
                throw Located(node: k, file: value.file).error("unknown setting '\(key)' in \(context)")
            }
            for (fk, fv) in try flatten(key: key, Located(node: v, file: value.file)) {
                try checkValue(fk, fv)
                out[fk] = fv
            }
        }
        return out
    }

    /// A run of the named scale preset, with its defaults.
    static func presetSpec(_ value: Located) throws -> RunSpec {
        let name = try value.string(expected: "a scale preset")
        guard let spec = RunSpec(preset: name) else { throw value.error("unknown preset '\(name)'; expected one of \(MultimodalRunConfig.scalePresets)") }
        return spec
    }

    static func checkValue(_ key: String, _ value: Located) throws {
        if key == "preset" { _ = try presetSpec(value); return }
        guard let field = Draft.fields[key] else { throw value.error("unknown setting '\(key)'; expected one of preset, \(Draft.fields.keys.sorted().joined(separator: ", "))") }
        var scratch = Draft.scratch
        try field.apply(key, value, &scratch)
    }

    mutating func readSweep(_ value: Located) throws {
        guard case let .mapping(m) = value.node else { throw value.error("sweep: expected a mapping of setting → list of values") }
        for (k, v) in m {
            let key = k.string ?? ""
            guard case let .sequence(values) = v, !values.isEmpty else {
                throw Located(node: v, file: value.file).error("sweep.\(key): expected a non-empty list of values")
            }
            let located = values.map { Located(node: $0, file: value.file) }
            let settings: [[String: Located]]
            if key == "runs" {
                settings = try located.map { try ManifestFile.flattenChecked($0, context: "sweep.runs") }
            } else {
                do { for l in located { try ManifestFile.checkValue(key, l) } } catch let e as ManifestError where e.message.hasPrefix("unknown setting") {
                    throw Located(node: k, file: value.file).error(e.message)
                }
                settings = located.map { [key: $0] }
            }
            sweep.removeAll { $0.key == key }
            sweep.append((key, settings))
        }
    }

    mutating func readBaselines(_ value: Located) throws {
        guard case let .mapping(m) = value.node else { throw value.error("baselines: expected a mapping of name → run settings") }
        for (k, v) in m {
            let name = try Located(node: k, file: value.file).string(expected: "a baseline name")
            let settings = try ManifestFile.flattenChecked(Located(node: v, file: value.file), context: "baseline '\(name)'")
            baselines.removeAll { $0.name == name }
            baselines.append((name, settings))
        }
    }

    static func describe(_ error: YamlError, file: String) -> ManifestError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            return ManifestError(file: file, line: mark.line, column: mark.column, message: "not valid YAML: \(problem)" + (context.map { " (\($0.text))" } ?? ""))
        case let .duplicatedKeysInMapping(duplicates, context):
            return ManifestError(file: file, line: context.mark.line, column: context.mark.column, message: "duplicated keys \(duplicates)")
        default:
            return ManifestError(file: file, line: 1, column: 1, message: "not valid YAML: \(error)")
        }
    }
}

extension Draft {
    static var scratch: Draft {
        var d = Draft(spec: RunSpec(preset: "tiny")!)
        d.checkpointEvery = 1
        return d
    }

    private init(spec: RunSpec) { self.spec = spec }
}

extension Located {
    func string(expected: String) throws -> String {
        guard case let .scalar(s) = node, !s.string.isEmpty else { throw error("expected \(expected)") }
        return s.string
    }

    /// One directory or a list of them.
    func directories() throws -> [String] {
        if case let .sequence(s) = node { return try s.map { try Located(node: $0, file: file).string(expected: "a directory") } }
        return [try string(expected: "a directory or a list of directories")]
    }

    func integer(atLeast minimum: Int, atMost maximum: Int = Int.max) throws -> Int {
        let bounds = maximum == Int.max ? "≥ \(minimum)" : "from \(minimum) to \(maximum)"
        guard let i = node.int, node.float.map({ $0 == Double(i) }) ?? true else {
            throw error("expected an integer \(bounds), got '\(node.string ?? "a \(node.kind)")'")
        }
        guard i >= minimum, i <= maximum else { throw error("expected an integer \(bounds), got \(i)") }
        return i
    }

    func positive() throws -> Double {
        guard let x = node.float, x > 0, x.isFinite else { throw error("expected a positive number, got '\(node.string ?? "a \(node.kind)")'") }
        return x
    }

    func choice<T: RawRepresentable & CaseIterable>(_ type: T.Type) throws -> T where T.RawValue == String {
        let options = T.allCases.map(\.rawValue)
        guard let s = node.string, let value = T(rawValue: s) else {
            throw error("expected one of \(options.joined(separator: ", ")), got '\(node.string ?? "a \(node.kind)")'")
        }
        return value
    }

    /// A mapping of task name → positive weight (tasks not named weigh 1).
    func lossWeights() throws -> [String: Double] {
        guard case let .mapping(m) = node else { throw error("expected a mapping of task → weight, e.g. {grounding: 4}") }
        let known = (BenchmarkTask.all + BenchmarkTask.probes).map(\.name)
        var weights: [String: Double] = [:]
        for (k, v) in m {
            let key = Located(node: k, file: file)
            guard let name = k.string, known.contains(name) else {
                throw key.error("unknown task '\(k.string ?? "?")'; expected some of \(known.joined(separator: ", "))")
            }
            weights[name] = try Located(node: v, file: file).positive()
        }
        return weights
    }

    /// `all` (the suite), one name, or a list of names (`all` in it stands for the suite; probes
    /// such as `colour` can be added).
    func benchmarks() throws -> [String] {
        let suite = BenchmarkTask.all.map(\.name), known = suite + BenchmarkTask.probes.map(\.name)
        if node.string == "all" { return suite }
        let items: [Located]
        switch node {
        case .scalar: items = [self]
        case let .sequence(s): items = s.map { Located(node: $0, file: file) }
        default: throw error("expected 'all' or a list of benchmarks")
        }
        guard !items.isEmpty else { throw error("expected at least one benchmark") }
        let names = try items.flatMap { item -> [String] in
            if item.node.string == "all" { return suite }
            guard let name = item.node.string, known.contains(name) else {
                throw item.error("unknown benchmark '\(item.node.string ?? "?")'; expected 'all' or some of \(known.joined(separator: ", "))")
            }
            return [name]
        }
        return names.enumerated().filter { i, n in !names.prefix(i).contains(n) }.map(\.element)
    }
}

extension Node {
    var kind: String {
        switch self {
        case .scalar: return "scalar"
        case .mapping: return "mapping"
        case .sequence: return "list"
        case .alias: return "alias"
        }
    }
}
