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

    /// Where Slurm submissions write their scripts and logs: `<store>/slurm`, as an absolute path
    /// (Slurm names scripts by theirs).
    public var slurmDirectory: String {
        URL(fileURLWithPath: store.directory).appendingPathComponent("slurm").standardizedFileURL.path
    }

    /// Each run's state: complete in the store; running (its lock's holder); queued in Slurm
    /// (`queue`, the user's Slurm jobs, of which those running this store's scripts count);
    /// failed (it has a log, and nothing runs it); or to run.
    public func states(queue: [Slurm.QueuedJob] = []) -> [(run: PlannedRun, state: RunState)] {
        var slurmJobs: [String: Slurm.QueuedJob] = [:]
        for job in queue where (job.script as NSString).deletingLastPathComponent == slurmDirectory {
            guard let task = job.jobID.split(separator: "_").last.flatMap({ Int($0) }),
                  let runs = SlurmSubmission.runs(ofScript: job.script), runs.indices.contains(task) else { continue }
            slurmJobs[runs[task]] = job
        }
        return manifest.runs.map { run in
            if store.completed(id: run.id, config: run.spec.json) != nil { return (run, .complete) }
            let job = slurmJobs[run.id]
            if let holder = RunLock.holder(of: store.workDirectory(of: run.id) + ".lock") { return (run, .running(holder: holder, job: job?.jobID)) }
            if let job { return (run, job.state == "RUNNING" ? .running(holder: "Slurm job \(job.jobID), starting", job: job.jobID) : .queued(job)) }
            if let last = lastLine(ofFile: store.logPath(of: run.id)) { return (run, .failed(lastLine: last)) }
            return (run, .toRun)
        }
    }

    /// Runs what is not complete; returns each run's outcome in manifest order.
    public func run(jobs: Int, threadsPerJob: Int, say: (String) -> Void) throws -> [(PlannedRun, Outcome)] {
        try DurableWrite.makeDirectory((store.directory as NSString).appendingPathComponent("logs"))
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

/// Where a run of a sweep stands.
public enum RunState: Equatable, Sendable {
    case complete
    /// A worker holds the run: who (host, process, Slurm job), and the Slurm job if Slurm runs it.
    case running(holder: String, job: String?)
    case queued(Slurm.QueuedJob)
    /// It has a log but is neither complete nor running: the log's last line says why.
    case failed(lastLine: String)
    case toRun

    /// Whether a submission has to queue it.
    public var needsSubmitting: Bool {
        switch self { case .failed, .toRun: return true; case .complete, .running, .queued: return false }
    }

    /// The Slurm job that has it, queued or running.
    public var slurmJob: String? {
        switch self { case let .queued(job): return job.jobID; case let .running(_, job): return job; default: return nil }
    }
}

/// The last line of a text file that is not empty; nil for a missing or empty file.
func lastLine(ofFile path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    let size = (try? handle.seekToEnd()) ?? 0
    try? handle.seek(toOffset: size > 4096 ? size - 4096 : 0)
    let tail = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    return tail.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init)
}

/// Exclusive ownership of a run while it executes: an open-file-description lock (Linux's
/// `F_OFD_SETLK`), which the kernel releases when the process dies and NFS carries between
/// nodes, so two sweeps — on one machine or on a cluster's nodes — never write one run. Unlike
/// `flock`, it can be asked who holds it without taking it (`holder(of:)`), so a `--status`
/// never makes a starting worker think the run is taken. The holder writes who it is into the file.
public final class RunLock {
    private let descriptor: Int32
    // glibc defines these only under _GNU_SOURCE, which Swift's Glibc module does not set; they are Linux's ABI.
    private static let getLock: Int32 = 36, setLock: Int32 = 37, setLockWaiting: Int32 = 38

    /// Nil when another process holds it (unless `waiting`, which waits for it) or the file cannot be made.
    public init?(path: String, waiting: Bool = false) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        descriptor = open(path, O_CREAT | O_RDWR, 0o644)
        guard descriptor >= 0 else { return nil }
        var lock = RunLock.wholeFile(F_WRLCK)
        guard fcntl(descriptor, waiting ? RunLock.setLockWaiting : RunLock.setLock, &lock) == 0 else { close(descriptor); return nil }
        let me = "\(ProcessInfo.processInfo.hostName) pid \(getpid())" + (RunLock.slurmJob.map { " (Slurm job \($0))" } ?? "") + "\n"
        if ftruncate(descriptor, 0) == 0 { _ = me.withCString { write(descriptor, $0, strlen($0)) } }
    }

    deinit { close(descriptor) }

    /// This process's Slurm job as squeue names it (`12_3` for a task of an array), if it is one.
    static var slurmJob: String? {
        let env = ProcessInfo.processInfo.environment
        if let array = env["SLURM_ARRAY_JOB_ID"], let task = env["SLURM_ARRAY_TASK_ID"] { return "\(array)_\(task)" }
        return env["SLURM_JOB_ID"]
    }

    /// Who holds the lock at `path` (as the holder wrote it), or nil if nobody does.
    public static func holder(of path: String) -> String? {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var lock = wholeFile(F_WRLCK)
        guard fcntl(descriptor, getLock, &lock) == 0, lock.l_type != Int16(F_UNLCK) else { return nil }
        let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return text.isEmpty ? "another process" : text
    }

    private static func wholeFile(_ type: Int32) -> flock {
        var lock = flock()
        lock.l_type = Int16(type)
        lock.l_whence = Int16(SEEK_SET)
        return lock
    }
}

/// A worker whose sweep process dies exits too, instead of running on unsupervised.
public func exitWhenOrphaned(parent: Int32) {
    Thread.detachNewThread {
        while getppid() == parent { Thread.sleep(forTimeInterval: 0.5) }
        _exit(3)
    }
}
