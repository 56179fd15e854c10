import Foundation
import HDF5
import XCTest

/// Sweeps killed at random moments, and sweeps of one manifest run at once: nothing is lost,
/// nothing is done twice, and what they leave is what an undisturbed sweep leaves.
final class InterruptionTests: XCTestCase {
    var folder: URL!
    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-interrupt-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// A baseline, a TF run of it and an FT run, checkpointing every 3 steps.
    private func manifest(_ name: String) throws -> String {
        let path = folder.appendingPathComponent("\(name).yaml").path
        try """
            store: \(folder.path)/\(name)/store
            results: \(folder.path)/\(name)/results
            preset: tiny
            vision: {grid: 4, crops: 2}
            training: {stage1_steps: 2, steps: 30, batch_size: 2, checkpoint_every: 3}
            evaluation: {benchmarks: [pope, ocr], samples: 2}
            baselines: {base: {variant: baseline}}
            sweep:
              runs:
                - {variant: baseline}
                - {variant: 'skip-vattn@from:2', mode: tf}
                - {variant: 'skip-vattn@from:2', mode: ft}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func sweep(_ manifest: String) throws -> Process {
        let process = Process()
        process.executableURL = squeezeBinary
        process.arguments = ["sweep", manifest, "--threads", "1", "--jobs", "2"]
        (process.standardOutput, process.standardError) = (FileHandle.nullDevice, FileHandle.nullDevice)
        try process.run()
        return process
    }

    /// What a complete store holds, run by run: the predictions on every benchmark and the
    /// training log's steps and losses. Every run must be complete and the store hold nothing else.
    private func contents(of name: String) throws -> [String: [String]] {
        let store = "\(folder.path)/\(name)/store"
        let files = try FileManager.default.contentsOfDirectory(atPath: store).filter { !["work", "logs"].contains($0) }
        XCTAssertEqual(files.count, 3, "three run files and nothing else: \(files)")
        var runs: [String: [String]] = [:]
        for file in files {
            let h5 = try HDF5File(path: "\(store)/\(file)", mode: .readOnly)
            XCTAssertEqual(try h5.attribute("status"), "complete", file)
            var facts = try ["pope", "ocr"].flatMap { try h5.readStrings("scores/\($0)/predictions") }
            if try h5.attribute("mode") != "tf" {
                let steps = try h5.readDoubles("training/step").values
                XCTAssertEqual(steps, (0..<32).map(Double.init), "\(file): every step once")
                facts += try h5.readDoubles("training/loss").values.map { String($0) }
            }
            runs[file] = facts
        }
        return runs
    }

    /// Twenty SIGKILLs of the sweep, at moments drawn at random (seeded) over the course of an
    /// undisturbed sweep on this machine — training, checkpointing, evaluating, writing run files,
    /// writing reports. Each killed sweep is started again on the same store. A store takes at most
    /// five kills and is then left to complete, so the kills fall in at least four sweeps' lives
    /// however fast the machine; a completed store is checked against the undisturbed sweep's (on
    /// this machine the same bytes: resume is exact) and a new one begun.
    func testTwentyRandomKillsLoseNothingAndChangeNothing() throws {
        let started = Date()
        XCTAssertEqual(try sweep(try manifest("undisturbed")).waitedFor(), 0)
        let course = Date().timeIntervalSince(started)
        let reference = try contents(of: "undisturbed")

        var generator = SplitMix(seed: 2026), kills = 0, stores = 0
        while kills < 20 {
            let name = "killed\(stores)", path = try manifest(name)
            for _ in 0..<min(5, 20 - kills) {
                let process = try sweep(path)
                let deadline = Date().addingTimeInterval(course * Double(generator.next() % 1000) / 1000)
                while process.isRunning && Date() < deadline { usleep(5_000) }
                guard process.isRunning else {   // the resumed sweep finished before its moment
                    XCTAssertEqual(process.terminationStatus, 0, "\(name) after \(kills) kills")
                    break
                }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                kills += 1
                usleep(700_000)   // its workers notice the orphaning within half a second and exit
            }
            XCTAssertEqual(try sweep(path).waitedFor(), 0, "\(name) after \(kills) kills")
            XCTAssertEqual(try contents(of: name), reference, "\(name): the interrupted sweep's runs equal the undisturbed one's")
            stores += 1
        }
        XCTAssertGreaterThanOrEqual(stores, 4)
    }

    /// Two sweeps of one manifest started together: every run is done once, by one of them;
    /// neither writes a run the other holds, its log included; both end, and whichever loses a
    /// run says another sweep is running it. Run again, the sweep finds everything complete.
    func testTwoSweepsAtOnceDoEachRunOnce() throws {
        let path = try manifest("shared")
        let outputs = (0..<2).map { _ in folder.appendingPathComponent("out-\(UUID())").path }
        let sweeps = try outputs.map { out -> Process in
            FileManager.default.createFile(atPath: out, contents: nil)
            let process = Process()
            process.executableURL = squeezeBinary
            process.arguments = ["sweep", path, "--threads", "1", "--jobs", "2", "--no-report"]
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
            process.standardError = process.standardOutput
            try process.run()
            return process
        }
        for s in sweeps { s.waitUntilExit() }
        let said = try outputs.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n")
        _ = try contents(of: "shared")
        let store = "\(folder.path)/shared/store"
        for log in try FileManager.default.contentsOfDirectory(atPath: store + "/logs") {
            let text = try String(contentsOfFile: "\(store)/logs/\(log)", encoding: .utf8)
            XCTAssertFalse(log.contains(".sweep-"), "a losing sweep's file was left: \(log)")
            XCTAssertEqual(text.components(separatedBy: "run \(log.prefix(16)):").count - 1, 1, "\(log) has its one run:\n\(text)")
        }
        for (s, output) in zip(sweeps, outputs) {
            let text = try String(contentsOfFile: output, encoding: .utf8)
            // A sweep that lost a run to the other ends with status 1 and says so; one that lost none, 0.
            XCTAssertEqual(s.terminationStatus, text.contains("another sweep is running it") ? 1 : 0, text)
        }
        XCTAssertEqual(said.components(separatedBy: " done ").count - 1, 3, "each run done once between them:\n\(said)")
        let again = try runSqueeze(["sweep", path, "--no-report"])
        XCTAssertTrue(again.out.contains("3 runs: 3 complete"), again.out)
    }
}

/// A small seeded generator (SplitMix64), so the kill moments are the same on every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private extension Process {
    func waitedFor() -> Int32 { waitUntilExit(); return terminationStatus }
}
