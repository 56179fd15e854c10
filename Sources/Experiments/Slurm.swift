import Foundation
import Kernels

/// What a sweep's jobs ask of Slurm (`squeeze sweep --slurm`); nil leaves a setting to the cluster.
public struct SlurmResources: Sendable {
    public var partition: String?, account: String?, time: String?, memory: String?
    /// Array tasks running at once (`--array=…%N`).
    public var throttle: Int?
    /// CPUs per task, which are the worker's OpenBLAS threads.
    public var cpusPerTask: Int
    /// Seconds before the time limit when a task is told to checkpoint and requeue itself.
    public var warningSeconds = 120

    public init(partition: String? = nil, account: String? = nil, time: String? = nil, memory: String? = nil, throttle: Int? = nil, cpusPerTask: Int = 1) {
        (self.partition, self.account, self.time, self.memory, self.throttle, self.cpusPerTask) = (partition, account, time, memory, throttle, cpusPerTask)
    }
}

/// The Slurm commands a sweep uses (`sbatch`, `squeue`, on PATH).
public enum Slurm {
    /// A task in Slurm's queue: `jobID` as Slurm names it (`12_3` for a task of an array), its
    /// state (PENDING, RUNNING, …), why it waits, and the batch script it runs.
    public struct QueuedJob: Equatable, Sendable {
        public let jobID: String, state: String, reason: String, script: String
        public init(jobID: String, state: String, reason: String, script: String) {
            (self.jobID, self.state, self.reason, self.script) = (jobID, state, reason, script)
        }
    }

    /// Whether a Slurm controller answers here.
    public static var isReachable: Bool { (try? command("sinfo", ["-h", "-o", "%P"])) != nil }

    /// Every job of this user in the queue, one line per array task.
    public static func queue() throws -> [QueuedJob] {
        let out = try command("squeue", ["-h", "-r", "-u", String(getuid()), "-o", "%i|%T|%r|%o"])
        return out.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            return f.count == 4 ? QueuedJob(jobID: f[0], state: f[1], reason: f[2], script: f[3]) : nil
        }
    }

    /// Submits a batch script after `afterAny` jobs end (however they end); returns its job id.
    public static func submit(_ script: String, afterAny: [String]) throws -> String {
        let dependency = afterAny.isEmpty ? [] : ["--dependency=afterany:" + afterAny.joined(separator: ":")]
        let out = try command("sbatch", ["--parsable"] + dependency + [script]).trimmingCharacters(in: .whitespacesAndNewlines)
        // --parsable prints "id" or "id;cluster".
        guard let id = out.split(separator: ";").first, !id.isEmpty else { throw SlurmError(problem: "sbatch printed no job id for \(script)") }
        return String(id)
    }

    /// Runs a Slurm command; its standard output, or an error with what it printed.
    static func command(_ name: String, _ arguments: [String]) throws -> String {
        let process = Process(), out = Pipe(), err = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [name] + arguments
        (process.standardOutput, process.standardError) = (out, err)
        do { try process.run() } catch { throw SlurmError(problem: "cannot run \(name): \(error.localizedDescription)") }
        // Read both streams before waiting: a full pipe would block the command.
        final class Drained: @unchecked Sendable { var data = Data() }   // written before the semaphore, read after
        let e = Drained(), drained = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { e.data = err.fileHandleForReading.readDataToEndOfFile(); drained.signal() }
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        drained.wait()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let said = String(decoding: e.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw SlurmError(problem: "\(name) failed (exit status \(process.terminationStatus))" + (said.isEmpty ? "" : ": \(said)"))
        }
        return output
    }
}

/// Slurm refused or is not there.
public struct SlurmError: Error, CustomStringConvertible {
    public let problem: String
    public var description: String { problem }
}

/// A sweep's runs as Slurm jobs: one job array per dependency level (a run's level is one more
/// than that of the deepest run it requires that is not complete yet), each array after the one
/// before it, one task per run that is neither complete nor already queued or running; and a
/// last job that writes the reports after every array, however they end. Each task runs the
/// run as a pool worker does (`squeeze sweep MANIFEST --only ID`), so the run lock, checkpoints,
/// resume and whole run files work unchanged on a shared file system. A task told of its time
/// limit (SIGUSR1) checkpoints, stops and requeues itself; it resumes from its checkpoint.
public struct SlurmSubmission {
    public struct Batch {
        /// Where the script is written: `<store>/slurm/<manifest>-<n>-level<k>.sbatch` or `-report`.
        public let path: String
        public let text: String
        /// The runs of an array, task i running runs[i]; empty for the report job.
        public let runs: [String]
        /// Index of the batches (earlier in the list) this one starts after, and queued jobs of earlier submissions.
        public let after: [Int], afterQueued: [String]
    }

    public let batches: [Batch]
    /// Runs left out because they are already queued or running.
    public let alreadyQueued: Int

    /// - Parameters: `states` each run's state now; `executable` and `manifestPath` absolute.
    public init(sweep: Sweep, states: [String: RunState], resources: SlurmResources, executable: String, manifestPath: String) {
        let manifest = sweep.manifest
        let cwd = FileManager.default.currentDirectoryPath
        let slurm = sweep.slurmDirectory
        let submission = SlurmSubmission.nextNumber(in: slurm, name: manifest.name)
        let prefix = (slurm as NSString).appendingPathComponent("\(manifest.name)-\(submission)")

        // Levels of what is to run: requirements that are complete need no waiting; queued or
        // running ones are waited for by job id.
        let byID = Dictionary(uniqueKeysWithValues: manifest.runs.map { ($0.id, $0) })
        var level: [String: Int] = [:]
        func levelOf(_ run: PlannedRun) -> Int {
            if let known = level[run.id] { return known }
            let deeper = run.requires.compactMap { id -> Int? in
                guard let required = byID[id], states[id]?.needsSubmitting ?? true else { return nil }
                return levelOf(required)
            }
            level[run.id] = (deeper.max() ?? -1) + 1
            return level[run.id]!
        }
        let toSubmit = manifest.runs.filter { states[$0.id]?.needsSubmitting ?? true }
        alreadyQueued = manifest.runs.filter { states[$0.id].map { !$0.needsSubmitting && $0 != .complete } ?? false }.count
        let levels = Dictionary(grouping: toSubmit, by: levelOf).sorted { $0.key < $1.key }.map(\.value)

        var batches: [Batch] = []
        for (k, runs) in levels.enumerated() {
            let waitingOn = runs.flatMap(\.requires).compactMap { states[$0]?.slurmJob }
            batches.append(Batch(path: "\(prefix)-level\(k).sbatch",
                                 text: SlurmSubmission.arrayScript(runs.map(\.id), level: k, manifest: manifest, manifestPath: manifestPath,
                                                                   logs: slurm, executable: executable, resources: resources, workingDirectory: cwd),
                                 runs: runs.map(\.id), after: k > 0 ? [k - 1] : [], afterQueued: Array(Set(waitingOn)).sorted()))
        }
        if !batches.isEmpty {
            let queuedJobs = states.values.compactMap(\.slurmJob)
            batches.append(Batch(path: "\(prefix)-report.sbatch",
                                 text: SlurmSubmission.reportScript(manifest: manifest, logs: slurm, executable: executable, resources: resources, workingDirectory: cwd),
                                 runs: [], after: Array(batches.indices), afterQueued: Array(Set(queuedJobs)).sorted()))
        }
        self.batches = batches
    }

    /// Writes the scripts and submits them in order; returns each batch's job id.
    public func submit() throws -> [String] {
        var ids: [String] = []
        for batch in batches {
            try DurableWrite.makeDirectory((batch.path as NSString).deletingLastPathComponent)
            try DurableWrite.replace(batch.path, with: Data(batch.text.utf8))
            ids.append(try Slurm.submit(batch.path, afterAny: batch.after.map { ids[$0] } + batch.afterQueued))
        }
        return ids
    }

    /// The run ids of an array script this sweep wrote (its `runs=(…)` line); nil for another script.
    public static func runs(ofScript path: String) -> [String]? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("runs=(") && $0.hasSuffix(")") }) else { return nil }
        return line.dropFirst("runs=(".count).dropLast().split(separator: " ").map(String.init)
    }

    private static func nextNumber(in directory: String, name: String) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let used = names.compactMap { file -> Int? in
            guard file.hasPrefix(name + "-"), file.hasSuffix(".sbatch") else { return nil }
            return Int(file.dropFirst(name.count + 1).prefix { $0.isNumber })
        }
        return (used.max() ?? 0) + 1
    }

    private static func header(name: String, output: String, resources: SlurmResources, workingDirectory: String) -> [String] {
        var lines = ["#!/bin/bash", "#SBATCH --job-name=\(name)", "#SBATCH --output=\(output)", "#SBATCH --open-mode=append",
                     "#SBATCH --chdir=\(workingDirectory)", "#SBATCH --cpus-per-task=\(resources.cpusPerTask)"]
        if let partition = resources.partition { lines.append("#SBATCH --partition=\(partition)") }
        if let account = resources.account { lines.append("#SBATCH --account=\(account)") }
        if let time = resources.time { lines.append("#SBATCH --time=\(time)") }
        if let memory = resources.memory { lines.append("#SBATCH --mem=\(memory)") }
        return lines
    }

    static func arrayScript(_ runs: [String], level: Int, manifest: Manifest, manifestPath: String, logs: String,
                            executable: String, resources: SlurmResources, workingDirectory: String) -> String {
        var lines = header(name: "squeeze-\(manifest.name)", output: "\(logs)/%A_%a.log", resources: resources, workingDirectory: workingDirectory)
        lines += ["#SBATCH --array=0-\(runs.count - 1)" + (resources.throttle.map { "%\($0)" } ?? ""),
                  "#SBATCH --signal=B:USR1@\(resources.warningSeconds)", "#SBATCH --requeue",
                  "# Written by `squeeze sweep \(manifestPath) --slurm`: the runs of dependency level \(level);",
                  "# task i runs runs[i], as a sweep's worker does. Its output is appended to \(logs)/<job>_<task>.log.",
                  "runs=(\(runs.joined(separator: " ")))",
                  "run=${runs[$SLURM_ARRAY_TASK_ID]}",
                  "task=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}",
                  "echo \"== run $run: Slurm job $task on $(hostname), $(date -Is), restart ${SLURM_RESTART_COUNT:-0}\"",
                  "# Warned before the time limit (--signal), the worker checkpoints and stops; the task goes back",
                  "# into the queue and resumes from the checkpoint.",
                  "trap 'echo \"== $task: time limit near, checkpointing and requeueing\"; [ -n \"$worker\" ] && kill -USR1 $worker && wait $worker; scontrol requeue \"$task\"; exit 0' USR1",
                  "worker=",
                  "\(shellQuoted(executable)) sweep \(shellQuoted(manifestPath)) --only \"$run\" --threads \(resources.cpusPerTask) --slurm-log \(shellQuoted(logs))/\"$task.log\" &",
                  "worker=$!",
                  "wait $worker"]
        return lines.joined(separator: "\n") + "\n"
    }

    static func reportScript(manifest: Manifest, logs: String, executable: String, resources: SlurmResources, workingDirectory: String) -> String {
        var lines = header(name: "squeeze-\(manifest.name)-report", output: "\(logs)/report_%j.log", resources: resources, workingDirectory: workingDirectory)
        lines += ["# Written by `squeeze sweep --slurm`: the reports, after the sweep's arrays.",
                  "\(shellQuoted(executable)) report --store \(shellQuoted(manifest.store)) --out \(shellQuoted(manifest.results))"]
        return lines.joined(separator: "\n") + "\n"
    }

    static func shellQuoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
