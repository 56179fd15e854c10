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

    func run() throws {
        let report = Report(store: RunStore(directory: store))
        let written = try report.write(to: out)
        print("\(report.runs.count) complete runs in \(store); wrote:")
        for path in written { print("  \(path)") }
    }
}
