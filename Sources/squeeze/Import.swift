import ArgumentParser
import Experiments
import Foundation

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Bring an external evaluator's results into the run store.",
        subcommands: [LmmsEval.self])

    struct LmmsEval: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lmms-eval",
            abstract: "Import an lmms-eval *_results.json as a run of a paper-scale model and variant (FLOPs counted by the accountant).")

        @Argument(help: "lmms-eval's results file.")
        var file: String
        @Option(help: "The paper-scale model that produced it (vicuna-7b, vicuna-13b, llama3-8b, qwen2-7b, phi3-3b, internlm2.5-7b).")
        var model: String
        @Option(help: "Its variant in the text form.")
        var variant = "baseline"
        @Option(help: "How the variant's model was obtained: full, tf or ft.")
        var mode = "full"
        @Option(help: "The run store.")
        var store = "Results/store"
        @Option(help: "Prompt for the FLOPs count: crops, grid side and text tokens (the paper's: 5, 24, 50).")
        var crops = 5
        @Option var grid = 24
        @Option var text = 50

        func run() throws {
            let imported = try reportingBadInput {
                try LmmsEvalImport(path: file, model: model, variant: variant, mode: mode, crops: crops, grid: grid, text: text)
            }
            let runStore = RunStore(directory: store)
            try runStore.write(imported.record)
            let r = imported.record
            print(String(format: "imported %@ as run %@: %d tasks, Score_fine %.2f over %d fine-grained, %.4g prefill FLOPs (%.1f %% fewer than baseline)",
                         file, r.id, r.benchmarks.count, 100 * r.scoreFine, r.benchmarks.filter(\.fineGrained).count, r.accounting.flops, r.accounting.reducedPercent))
            print("wrote \(runStore.path(of: r.id))")
        }
    }
}
