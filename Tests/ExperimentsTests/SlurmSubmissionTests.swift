import Experiments
import Foundation
import XCTest

/// How a sweep becomes Slurm jobs, without a Slurm (SlurmTests in CLITests runs them on one).
final class SlurmSubmissionTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-slurm-plan-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// Two seeds of a baseline, a TF run of each and an FT run of each, in every state a run can
    /// be in: what is complete, queued or running is left out; a TF run whose baseline is
    /// submitted now goes one level later, one whose baseline is complete does not wait; the
    /// report job comes after every array and every run queued before.
    func testEachLevelIsAnArrayAfterTheOneBeforeAndQueuedRunsAreNotSubmittedAgain() throws {
        let path = folder.appendingPathComponent("m.yaml").path
        try """
            name: plan
            store: \(folder.path)/store
            preset: tiny
            baselines: {base: {variant: baseline}}
            sweep:
              seed: [1, 2]
              runs:
                - {variant: baseline}
                - {variant: 'skip-vattn@from:2', mode: tf}
                - {variant: 'skip-vattn@from:2', mode: ft}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let sweep = Sweep(manifest: try Manifest(path: path), worker: [])
        let runs = sweep.manifest.runs
        func run(_ label: String, seed: UInt64) -> String { runs.first { $0.spec.label == label && $0.spec.seed == seed }!.id }
        let (base1, base2) = (run("baseline", seed: 1), run("baseline", seed: 2))
        let (tf1, tf2) = (run("skip-vattn@from:2 [TF]", seed: 1), run("skip-vattn@from:2 [TF]", seed: 2))
        let (ft1, ft2) = (run("skip-vattn@from:2 [FT]", seed: 1), run("skip-vattn@from:2 [FT]", seed: 2))
        let queuedJob = Slurm.QueuedJob(jobID: "7_0", state: "PENDING", reason: "Priority", script: "/elsewhere.sbatch")
        let states: [String: RunState] = [base1: .complete, base2: .failed(lastLine: "killed"), tf1: .toRun, tf2: .toRun,
                                          ft1: .queued(queuedJob), ft2: .running(holder: "node3 pid 12 (Slurm job 8_1)", job: "8_1")]
        var resources = SlurmResources(partition: "gpu", account: "lab", time: "04:00:00", memory: "8G", throttle: 3, cpusPerTask: 2)
        resources.warningSeconds = 90
        let plan = SlurmSubmission(sweep: sweep, states: states, resources: resources, executable: "/opt/squeeze", manifestPath: path)

        XCTAssertEqual(plan.alreadyQueued, 2)
        XCTAssertEqual(plan.batches.count, 3, "two levels and the report")
        XCTAssertEqual(Set(plan.batches[0].runs), [base2, tf1])
        XCTAssertEqual(plan.batches[1].runs, [tf2])
        XCTAssertEqual(plan.batches[1].after, [0])
        XCTAssertEqual(plan.batches[2].runs, [])
        XCTAssertEqual(plan.batches[2].after, [0, 1])
        XCTAssertEqual(plan.batches[2].afterQueued, ["7_0", "8_1"])
        XCTAssertTrue(plan.batches[0].path.hasSuffix("/store/slurm/plan-1-level0.sbatch"), plan.batches[0].path)

        let script = plan.batches[0].text
        for line in ["#SBATCH --array=0-1%3", "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=04:00:00",
                     "#SBATCH --mem=8G", "#SBATCH --cpus-per-task=2", "#SBATCH --signal=B:USR1@90", "#SBATCH --requeue",
                     "#SBATCH --open-mode=append", "#SBATCH --output=\(folder.path)/store/slurm/%A_%a.log",
                     "'/opt/squeeze' sweep '\(path)' --only \"$run\" --threads 2"] {
            XCTAssertTrue(script.contains(line), "\(line) in\n\(script)")
        }
        // Every #SBATCH line comes before the first command, or sbatch ignores it.
        let lines = script.split(separator: "\n")
        XCTAssertLessThan(lines.lastIndex { $0.hasPrefix("#SBATCH") }!, lines.firstIndex { !$0.hasPrefix("#") }!)
        XCTAssertTrue(plan.batches[2].text.contains("report --store '\(folder.path)/store'"), plan.batches[2].text)

        // The script names its runs; a queued task of it is the run of its index.
        try FileManager.default.createDirectory(atPath: folder.path + "/store/slurm", withIntermediateDirectories: true)
        try script.write(toFile: plan.batches[0].path, atomically: true, encoding: .utf8)
        XCTAssertEqual(SlurmSubmission.runs(ofScript: plan.batches[0].path), plan.batches[0].runs)
        let queue = [Slurm.QueuedJob(jobID: "9_1", state: "PENDING", reason: "Dependency", script: plan.batches[0].path),
                     Slurm.QueuedJob(jobID: "9_0", state: "RUNNING", reason: "None", script: plan.batches[0].path),
                     Slurm.QueuedJob(jobID: "3_0", state: "PENDING", reason: "None", script: "/someone/else.sbatch")]
        let now = Dictionary(uniqueKeysWithValues: sweep.states(queue: queue).map { ($0.run.id, $0.state) })
        XCTAssertEqual(now[plan.batches[0].runs[1]], .queued(queue[0]))
        XCTAssertEqual(now[plan.batches[0].runs[0]], .running(holder: "Slurm job 9_0, starting", job: "9_0"))
        XCTAssertEqual(now[ft1], .toRun, "a job of another script is not this run")
        // The next submission does not overwrite the scripts queued jobs run.
        let next = SlurmSubmission(sweep: sweep, states: now, resources: resources, executable: "/opt/squeeze", manifestPath: path)
        XCTAssertTrue(next.batches[0].path.hasSuffix("/store/slurm/plan-2-level0.sbatch"), next.batches[0].path)
    }
}
