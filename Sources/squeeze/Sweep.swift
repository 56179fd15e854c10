import ArgumentParser
import Experiments
import Foundation
import Kernels

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a manifest's runs into the HDF5 run store (complete runs are skipped), then write the reports.")

    @Argument(help: "A YAML manifest, e.g. Experiments/quickstart.yaml.")
    var manifest: String
    @Flag(help: "List the expanded runs with their ids and whether each is complete; run nothing.")
    var dryRun = false
    @Option(help: "Runs at a time, each in its own process with cores/jobs OpenBLAS threads (default: the manifest's jobs, or 1).")
    var jobs: Int?
    @Flag(help: "Do not write the reports at the end.")
    var noReport = false
    @Option(help: .hidden) var only: String?
    @Option(help: .hidden) var parent: Int32?
    @Option(help: .hidden) var launchLog: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        let manifest = try reportingBadInput { try Manifest(path: self.manifest) }
        if let only { return try runOne(only, of: manifest) }
        let sweep = Sweep(manifest: manifest, worker: [SqueezeVersion.executable, "sweep", self.manifest, "--only"])
        if dryRun {
            print("\(manifest.name): \(manifest.runs.count) runs into \(manifest.store)")
            print("id                status    run")
            for (run, complete) in sweep.status() {
                let needs = run.requires.isEmpty ? "" : "  after \(run.requires.joined(separator: ", "))"
                print("\(run.id)  \(complete ? "complete" : "to run  ")  \(run.spec.label) · \(run.spec.preset) · seed \(run.spec.seed) · model \(run.spec.trainingID)\(needs)")
            }
            return
        }
        let jobs = self.jobs ?? manifest.jobs
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        let outcomes = try sweep.run(jobs: jobs, threadsPerJob: max(1, compute.threads / jobs)) { print($0); fflush(stdout) }
        let failed = outcomes.filter { !$0.1.succeeded }
        print("summary: \(outcomes.count - failed.count) of \(outcomes.count) runs complete" + (failed.isEmpty ? "" : ", \(failed.count) failed:"))
        for (run, outcome) in failed {
            if case let .failed(why) = outcome { print("  \(run.id) \(run.spec.label): \(why)") }
        }
        if !noReport {
            try reportingBadInput { try writeReport(store: manifest.store, to: manifest.results) }
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }

    /// One run, in this process (a worker of the pool).
    private func runOne(_ id: String, of manifest: Manifest) throws {
        guard let run = manifest.runs.first(where: { $0.id == id }) else { throw ValidationError("no run \(id) in \(self.manifest)") }
        if let parent { exitWhenOrphaned(parent: parent) }
        compute.apply()
        let store = RunStore(directory: manifest.store, modelStores: manifest.modelStores)
        guard let lock = RunLock(path: store.workDirectory(of: id) + ".lock") else {
            FileHandle.standardError.write(Data("run \(id) is being run by another process\n".utf8))
            throw ExitCode(75)
        }
        defer { withExtendedLifetime(lock) {} }
        // Holding the lock, this worker's output (so far in its sweep's own file) becomes the run's log.
        if let launchLog { rename(launchLog, store.logPath(of: id)) }
        if store.completed(id: id, config: run.spec.json) != nil { return print("\(id) is already complete") }
        print("run \(id): \(run.spec.json)")
        try reportingBadInput { try RunExecutor(store: store).execute(run) { print($0); fflush(stdout) } }
    }
}
