import ArgumentParser
import Experiments
import Foundation
import Kernels
import Training

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a manifest's runs into the HDF5 run store (complete runs are skipped), then write the reports.",
        discussion: """
            Runs go to a pool of worker processes on this machine, or, with --slurm, to Slurm: one job \
            array per dependency level, then a job that writes the reports. Run it again and it runs \
            (or submits) only what is neither complete nor running nor queued. --status says where \
            each run stands.
            """)

    @Argument(help: "A YAML manifest, e.g. Experiments/quickstart.yaml.")
    var manifest: String
    @Flag(help: "List the expanded runs with their ids and whether each is complete; run nothing.")
    var dryRun = false
    @Option(help: "Runs at a time, each in its own process with cores/jobs OpenBLAS threads (default: the manifest's jobs, or 1).")
    var jobs: Int?
    @Flag(help: "Do not write the reports at the end.")
    var noReport = false
    @Flag(help: "Each run's state: complete, running (and who holds it), queued (its Slurm job), failed (its log's last line), or to run.")
    var status = false
    @OptionGroup(title: "Slurm") var slurm: SlurmOptions
    @Option(help: .hidden) var only: String?
    @Option(help: .hidden) var slurmLog: String?
    @Option(help: .hidden) var parent: Int32?
    @Option(help: .hidden) var launchLog: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        let manifest = try reportingBadInput { try Manifest(path: self.manifest) }
        if let only { return try runOne(only, of: manifest) }
        let sweep = Sweep(manifest: manifest, worker: [SqueezeVersion.executable, "sweep", self.manifest, "--only"])
        if status { return try printStatus(sweep) }
        if slurm.slurm { return try submit(sweep) }
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
        let outcomes = try reportingBadInput { try sweep.run(jobs: jobs, threadsPerJob: max(1, compute.threads / jobs)) { print($0); fflush(stdout) } }
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
        // Holding the lock, this worker's output (so far in its sweep's own file, or in its Slurm
        // task's log) becomes the run's log.
        if let launchLog { rename(launchLog, store.logPath(of: id)) }
        if let slurmLog {
            let link = store.logPath(of: id)
            try? FileManager.default.createDirectory(atPath: (link as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: link)
            symlink(slurmLog, link)
        }
        if store.completed(id: id, config: run.spec.json) != nil { return print("\(id) is already complete") }
        print("run \(id): \(run.spec.json)")
        StopRequest.shared.install()
        do {
            try reportingBadInput { try RunExecutor(store: store).execute(run) { print($0); fflush(stdout) } }
        } catch let stopped as TrainingStopped {
            print("\(id): \(stopped)")
            throw ExitCode(StopRequest.exitStatus)
        }
    }

    private func printStatus(_ sweep: Sweep) throws {
        let slurmHere = Slurm.isReachable
        let states = sweep.states(queue: slurmHere ? try reportingSlurm { try Slurm.queue() } : [])
        let counts = Dictionary(grouping: states, by: { $0.state.name }).mapValues(\.count)
        print("\(sweep.manifest.name): \(states.count) runs into \(sweep.manifest.store): "
              + ["complete", "running", "queued", "failed", "to run"].map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: ", ")
              + (slurmHere ? "" : " (no Slurm answers here: queued jobs are not known)"))
        print("id                state     run")
        for (run, state) in states {
            let what: String
            switch state {
            case .complete, .toRun: what = ""
            case let .running(holder, _): what = " — \(holder)"
            case let .queued(job): what = " — Slurm job \(job.jobID), \(job.state.lowercased())" + (job.reason == "None" ? "" : " (\(job.reason))")
            case let .failed(last): what = " — \(last)"
            }
            print("\(run.id)  \(state.name.padding(toLength: 8, withPad: " ", startingAt: 0))  \(run.spec.label) · seed \(run.spec.seed)\(what)")
        }
    }

    /// Submits what is neither complete, running nor queued to Slurm (or, with --dry-run, prints it).
    private func submit(_ sweep: Sweep) throws {
        let queue = dryRun && !Slurm.isReachable ? [] : try reportingSlurm { try Slurm.queue() }
        let states = Dictionary(uniqueKeysWithValues: sweep.states(queue: queue).map { ($0.run.id, $0.state) })
        let submission = SlurmSubmission(sweep: sweep, states: states, resources: slurm.resources,
                                         executable: SqueezeVersion.executable, manifestPath: URL(fileURLWithPath: manifest).standardizedFileURL.path)
        let arrays = submission.batches.filter { !$0.runs.isEmpty }
        let summary = "\(arrays.map(\.runs.count).reduce(0, +)) runs in \(arrays.count) job arrays and a report job"
            + (submission.alreadyQueued > 0 ? "; \(submission.alreadyQueued) already queued or running" : "")
        guard !submission.batches.isEmpty else {
            return print("nothing to submit: every run is complete, running or queued (squeeze sweep \(manifest) --status)")
        }
        if dryRun {
            print("would submit \(summary):")
            for (i, batch) in submission.batches.enumerated() {
                let after = batch.after.map { "$JOB\($0)" } + batch.afterQueued
                print("\n$JOB\(i) = sbatch --parsable" + (after.isEmpty ? "" : " --dependency=afterany:" + after.joined(separator: ":")) + " \(batch.path)")
                print(batch.text, terminator: "")
            }
            return
        }
        let ids = try reportingSlurm { try submission.submit() }
        print("submitted \(summary):")
        for (batch, id) in zip(submission.batches, ids) {
            print("  job \(id): " + (batch.runs.isEmpty ? "reports into \(sweep.manifest.results)" : "\(batch.runs.count) runs") + " (\(batch.path))")
        }
        print("follow with: squeeze sweep \(manifest) --status")
    }
}

/// How `sweep --slurm` asks Slurm for resources.
struct SlurmOptions: ParsableArguments {
    @Flag(help: "Submit the runs to Slurm as job arrays (with --dry-run: print the scripts, submit nothing).")
    var slurm = false
    @Option(help: "The partition to run in.") var partition: String?
    @Option(help: "The account to charge.") var account: String?
    @Option(help: "Array tasks running at once.") var throttle: Int?
    @Option(help: "Each task's time limit, HH:MM:SS (or any form sbatch takes); warned 2 minutes before, a task checkpoints and requeues itself.")
    var time: String?
    @Option(help: "CPUs per task: the worker's OpenBLAS threads.") var cpusPerTask = 1
    @Option(help: "Memory per node, as sbatch takes it (e.g. 8G).") var mem: String?

    func validate() throws {
        if let throttle { try check(throttle, in: 1...100_000, "--throttle") }
        try check(cpusPerTask, in: 1...1024, "--cpus-per-task")
        for (name, value) in [("--partition", partition), ("--account", account), ("--time", time), ("--mem", mem)] {
            if let value, value.isEmpty || value.contains(where: { $0.isWhitespace || $0 == "'" }) {
                throw ValidationError("\(name) must be one word without quotes, got '\(value)'")
            }
        }
        if !slurm, partition != nil || account != nil || throttle != nil || time != nil || mem != nil {
            throw ValidationError("--partition, --account, --throttle, --time and --mem go with --slurm")
        }
    }

    var resources: SlurmResources {
        SlurmResources(partition: partition, account: account, time: time, memory: mem, throttle: throttle, cpusPerTask: cpusPerTask)
    }
}

/// Runs a body that talks to Slurm; a refusal is reported in one line with status 1.
private func reportingSlurm<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SlurmError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

private extension RunState {
    var name: String {
        switch self {
        case .complete: return "complete"
        case .running: return "running"
        case .queued: return "queued"
        case .failed: return "failed"
        case .toRun: return "to run"
        }
    }
}
