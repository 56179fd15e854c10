import Foundation
import Kernels

/// Runs a manifest's runs in a pool of worker processes, each run in its own process (a crash
/// stays in its run), `jobs` at a time, each after the runs it requires. Complete runs in the
/// store are skipped; incomplete ones are redone (training resumes from its checkpoint).
public struct Sweep {
    public let manifest: Manifest
    public let store: RunStore
    /// The command that runs one run: this executable and its arguments before the run id.
    public let worker: [String]

    public init(manifest: Manifest, worker: [String]) {
        self.manifest = manifest
        store = RunStore(directory: manifest.store, modelStores: manifest.modelStores)
        self.worker = worker
    }

    public enum Outcome: Equatable {
        case complete, ran, failed(String)
        public var succeeded: Bool { self == .complete || self == .ran }
    }

    /// Whether each run is already complete in the store.
    public func status() -> [(run: PlannedRun, complete: Bool)] {
        manifest.runs.map { ($0, store.completed(id: $0.id, config: $0.spec.json) != nil) }
    }

    /// Runs what is not complete; returns each run's outcome in manifest order.
    public func run(jobs: Int, threadsPerJob: Int, say: (String) -> Void) throws -> [(PlannedRun, Outcome)] {
        try FileManager.default.createDirectory(atPath: (store.directory as NSString).appendingPathComponent("logs"), withIntermediateDirectories: true)
        var outcomes: [String: Outcome] = [:]
        for (run, complete) in status() where complete { outcomes[run.id] = .complete }
        var waiting = manifest.runs.filter { outcomes[$0.id] == nil }
        var running: [(run: PlannedRun, process: Process, started: Date)] = []
        let total = waiting.count
        say("\(manifest.runs.count) runs: \(manifest.runs.count - total) complete in \(store.directory), \(total) to run, \(jobs) at a time")
        var finished = 0
        while !waiting.isEmpty || !running.isEmpty {
            // Start what can start.
            for run in waiting where running.count < jobs {
                let requirements = run.requires.map { outcomes[$0] }
                if requirements.contains(where: { $0 != nil && !$0!.succeeded }) {
                    outcomes[run.id] = .failed("a run it requires failed")
                } else if requirements.allSatisfy({ $0?.succeeded ?? false }) {
                    running.append((run, try launch(run, threads: threadsPerJob), Date()))
                    say("started \(run.id) \(run.spec.label) (seed \(run.spec.seed))")
                } else { continue }
                waiting.removeAll { $0.id == run.id }
            }
            Thread.sleep(forTimeInterval: 0.2)
            for (i, r) in running.enumerated().reversed() where !r.process.isRunning {
                running.remove(at: i)
                finished += 1
                let seconds = Date().timeIntervalSince(r.started)
                if r.process.terminationStatus == 0, store.completed(id: r.run.id, config: r.run.spec.json) != nil {
                    outcomes[r.run.id] = .ran
                    say(String(format: "[%d/%d] done %@ %@ in %.0f s", finished, total, r.run.id, r.run.spec.label, seconds))
                } else if r.process.terminationStatus == 75 {
                    unlink(launchLog(of: r.run.id))   // it only said that another sweep holds the run
                    outcomes[r.run.id] = .failed("another sweep is running it")
                    say(String(format: "[%d/%d] FAILED %@ %@: another sweep is running it", finished, total, r.run.id, r.run.spec.label))
                } else {
                    let why = "exit status \(r.process.terminationStatus)", log = output(of: r.run.id)
                    outcomes[r.run.id] = .failed("\(why); see \(log)")
                    say(String(format: "[%d/%d] FAILED %@ %@ (%@): see %@", finished, total, r.run.id, r.run.spec.label, why, log))
                }
            }
        }
        return manifest.runs.map { ($0, outcomes[$0.id] ?? .failed("not run")) }
    }

    /// Starts a worker. Its output goes to a file of this sweep's own (`logs/ID.log.sweep-PID`),
    /// which the worker renames over the run's log once it holds the run's lock: a sweep that
    /// does not hold a run never writes the run's log.
    private func launch(_ run: PlannedRun, threads: Int) throws -> Process {
        let launchLog = self.launchLog(of: run.id)
        guard FileManager.default.createFile(atPath: launchLog, contents: nil) else {
            throw WriteError(file: launchLog, problem: "cannot be created (\(WriteError.reason))")
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: launchLog))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: worker[0])
        process.arguments = Array(worker.dropFirst()) + [run.id, "--threads", String(threads), "--parent", String(getpid()), "--launch-log", launchLog]
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return process
    }

    private func launchLog(of id: String) -> String { store.logPath(of: id) + ".sweep-\(getpid())" }

    /// Where a finished worker's output is: the run's log if it took the run, else this sweep's file.
    private func output(of id: String) -> String {
        FileManager.default.fileExists(atPath: launchLog(of: id)) ? launchLog(of: id) : store.logPath(of: id)
    }
}

/// Exclusive ownership of a run while it executes: an advisory lock the kernel releases when
/// the process dies, so two sweeps never write one run.
public final class RunLock {
    private let descriptor: Int32

    /// Nil when another process holds it (unless `waiting`, which waits for it) or the file cannot be made.
    public init?(path: String, waiting: Bool = false) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        descriptor = open(path, O_CREAT | O_RDWR, 0o644)
        guard descriptor >= 0 else { return nil }
        guard flock(descriptor, waiting ? LOCK_EX : LOCK_EX | LOCK_NB) == 0 else { close(descriptor); return nil }
    }

    deinit { close(descriptor) }
}

/// A worker whose sweep process dies exits too, instead of running on unsupervised.
public func exitWhenOrphaned(parent: Int32) {
    Thread.detachNewThread {
        while getppid() == parent { Thread.sleep(forTimeInterval: 0.5) }
        _exit(3)
    }
}
