import Foundation
import HDF5
import XCTest

/// `squeeze sweep --slurm` against a real Slurm: the single-node cluster that `scripts/slurm-up.sh`
/// starts (CI runs it first). Where no Slurm answers, these tests are skipped and say why —
/// unless SQUEEZE_REQUIRE_SLURM=1 (as in CI), which makes a missing Slurm a failure.
final class SlurmTests: XCTestCase {
    var folder: URL!
    let startedIn = FileManager.default.currentDirectoryPath

    override func setUpWithError() throws {
        if !slurmAnswers() {
            let why = "no Slurm answers here (sinfo failed); scripts/slurm-up.sh starts one (as root)"
            if ProcessInfo.processInfo.environment["SQUEEZE_REQUIRE_SLURM"] == "1" { XCTFail(why); throw XCTSkip(why) }
            throw XCTSkip(why)
        }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-slurm-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder.path))
    }

    override func tearDownWithError() throws {
        guard let folder else { return }
        let name = "squeeze-\(folder.lastPathComponent)"
        _ = try? shell("scancel", "--name", "\(name),\(name)-report")   // nothing of a failed test stays queued
        _ = FileManager.default.changeCurrentDirectoryPath(startedIn)
        try? FileManager.default.removeItem(at: folder)
    }

    /// A baseline, a TF run that evaluates it and an FT run: two job arrays and a report job.
    /// Submitted again while they are queued or running, nothing is submitted twice; at the end
    /// every run is complete, each ran exactly once, and the reports are written.
    func testASweepRunsOnSlurmEachRunOnceThenTheReports() throws {
        let manifest = try writeManifest(steps: 30, runs: """
                - {variant: baseline}
                - {variant: 'skip-vattn@from:2', mode: tf}
                - {variant: 'skip-vattn@from:2', mode: ft}
            """)
        let submitted = try runSqueeze(["sweep", manifest, "--slurm", "--throttle", "2"])
        XCTAssertEqual(submitted.status, 0, submitted.out + submitted.err)
        XCTAssertTrue(submitted.out.contains("submitted 3 runs in 2 job arrays and a report job"), submitted.out)
        let again = try runSqueeze(["sweep", manifest, "--slurm"])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.out.contains("nothing to submit"), again.out)

        try waitForOurJobs(seconds: 150)
        let status = try runSqueeze(["sweep", manifest, "--status"])
        XCTAssertTrue(status.out.contains("3 runs into store: 3 complete, 0 running, 0 queued, 0 failed, 0 to run"), status.out)
        let ids = status.out.split(separator: "\n").dropFirst(2).map { String($0.prefix(16)) }
        let logs = try slurmLogs()
        for id in ids {
            XCTAssertEqual(logs.components(separatedBy: "== run \(id):").count - 1, 1, "\(id) ran once:\n\(logs)")
            XCTAssertEqual(try HDF5File(path: "store/\(id).h5", mode: .readOnly).attribute("status"), "complete")
            // The run's log is its Slurm task's.
            XCTAssertTrue(try String(contentsOfFile: "store/logs/\(id).log", encoding: .utf8).contains("\(id) complete: Score_fine"))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "results/table1_attention_skip.csv"), "the report job wrote the reports:\n\(logs)")
        XCTAssertTrue(try runSqueeze(["sweep", manifest, "--slurm"]).out.contains("nothing to submit"))
    }

    /// A task warned of its time limit (the SIGUSR1 that `--signal` sends) checkpoints, requeues
    /// itself and resumes; a task cancelled with `scancel` checkpoints and stops, shows as failed
    /// with its log's last line, and submitted again resumes from that checkpoint. Its training
    /// log has every step exactly once.
    func testAnInterruptedTaskResumesFromItsCheckpoint() throws {
        let steps = 6000
        let manifest = try writeManifest(steps: steps, runs: "    - {variant: baseline}\n")
        XCTAssertEqual(try runSqueeze(["sweep", manifest, "--slurm"]).status, 0)
        let id = String(try runSqueeze(["sweep", manifest, "--status"]).out.split(separator: "\n")[2].prefix(16))

        // The time-limit warning, as Slurm sends it: to the batch shell only.
        try waitUntil(seconds: 60, "a first checkpoint") { self.checkpoints(under: "store/work") }
        let task = try XCTUnwrap(try ourJobs().first { $0.state == "RUNNING" && $0.id.contains("_") }).id
        _ = try shell("scancel", "--signal=USR1", "--batch", task)
        // A requeued job waits cred_expire seconds before it starts again (slurm-up.sh sets 10).
        try waitUntil(seconds: 60, "the resumed training") { try self.log(of: id).contains("resumes its training") }

        // Cancelled: it stops at a checkpoint; nothing queues it again.
        try waitUntil(seconds: 60, "progress after the resume") { try self.log(of: id).components(separatedBy: " step ").count > 3 }
        _ = try shell("scancel", task)
        try waitUntil(seconds: 60, "the cancelled task to leave the queue") { try !self.ourJobs().contains { $0.id == task } }
        let stopped = try runSqueeze(["sweep", manifest, "--status"])
        XCTAssertTrue(stopped.out.contains("\(id)  failed    baseline · seed 1 — \(id): "), stopped.out)
        XCTAssertTrue(stopped.out.contains("stopped on request at step"), stopped.out)

        XCTAssertEqual(try runSqueeze(["sweep", manifest, "--slurm"]).status, 0)
        try waitForOurJobs(seconds: 150)
        let logs = try slurmLogs()
        let resumedAt = logs.components(separatedBy: "resumes its training from the checkpoint at step ").dropFirst()
            .compactMap { Int($0.prefix { $0.isNumber }) }
        XCTAssertEqual(resumedAt.count, 2, logs)
        XCTAssertTrue(resumedAt.count == 2 && 0 < resumedAt[0] && resumedAt[0] < resumedAt[1], "\(resumedAt)")
        XCTAssertEqual(try HDF5File(path: "store/\(id).h5", mode: .readOnly).readDoubles("training/step").values,
                       (0..<(steps + 2)).map(Double.init), "every step once, across three starts")
    }

    // MARK: - helpers

    private func writeManifest(steps: Int, runs: String) throws -> String {
        let path = folder.appendingPathComponent("sweep.yaml").path
        try """
            name: \(folder.lastPathComponent)
            store: store
            results: results
            preset: tiny
            vision: {grid: 4, crops: 2}
            training: {stage1_steps: 2, steps: \(steps), batch_size: 2, checkpoint_every: 50}
            evaluation: {benchmarks: [pope, ocr], samples: 2}
            baselines: {base: {variant: baseline}}
            sweep:
              runs:
            \(runs)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func slurmAnswers() -> Bool { (try? shell("sinfo", "-h", "-o", "%P")) != nil }

    /// This test's jobs in Slurm's queue (its job arrays are named after its folder).
    private func ourJobs() throws -> [(id: String, state: String)] {
        try shell("squeue", "-h", "-r", "--name", "squeeze-\(folder.lastPathComponent),squeeze-\(folder.lastPathComponent)-report", "-o", "%i %T")
            .split(separator: "\n").map { line in let f = line.split(separator: " "); return (String(f[0]), String(f[1])) }
    }

    private func waitForOurJobs(seconds: Double) throws {
        try waitUntil(seconds: seconds, "the jobs to finish") { try self.ourJobs().isEmpty }
    }

    private func waitUntil(seconds: Double, _ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try !condition() {
            guard Date() < deadline else {
                XCTFail("no \(what) within \(Int(seconds)) s; queue: \((try? shell("squeue")) ?? "?")\nlogs:\n\((try? slurmLogs()) ?? "")")
                throw XCTSkip("gave up waiting for \(what)")
            }
            usleep(200_000)
        }
    }

    private func checkpoints(under directory: String) -> Bool {
        let names = (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String]) ?? []
        return names.contains { $0.hasSuffix("checkpoint.safetensors") }
    }

    private func log(of id: String) throws -> String { (try? String(contentsOfFile: "store/logs/\(id).log", encoding: .utf8)) ?? "" }

    private func slurmLogs() throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "store/slurm").filter { $0.hasSuffix(".log") }.sorted()) ?? []
        return try names.map { "--- \($0)\n" + (try String(contentsOfFile: "store/slurm/\($0)", encoding: .utf8)) }.joined()
    }

    @discardableResult
    private func shell(_ arguments: String...) throws -> String {
        let process = Process(), out = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw NSError(domain: "\(arguments.joined(separator: " ")) failed", code: Int(process.terminationStatus)) }
        return text
    }
}
