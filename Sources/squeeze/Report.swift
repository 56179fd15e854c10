import ArgumentParser
import Experiments
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the paper-shaped tables and figures (CSV, SVG) from the run store, with the paper's numbers beside ours.")

    @Option(help: "The run store (a directory of run files).")
    var store = "Results/store"
    @Option(help: "Where to write the tables and figures.")
    var out = "Results"
    @Flag(help: "Also write index.html: one self-contained page with every table and figure and each run's configuration and provenance.")
    var html = false

    func run() throws { try reportingBadInput { try writeReport(store: store, to: out, html: html) } }
}

/// Writes the reports of a store and says what it wrote and which runs it left out.
func writeReport(store: String, to out: String, html: Bool = false) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: store, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw StoreError(file: store, problem: "no run store there (expected a directory of run files); the reports are left as they were")
    }
    if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
        throw StoreError(file: out, problem: "is a file, not a directory for the reports; they are not written")
    }
    let report = Report(store: RunStore(directory: store))
    let written = try report.write(to: out, html: html)
    print("\(report.runs.count) complete runs in \(store); wrote \(written.count) report files:")
    for path in written { print("  \(path)") }
    for (id, reason) in report.leftOut { print("left out \(id): \(reason)") }
}
