import ArgumentParser
import Benchmarks
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Look at the synthetic benchmarks: one sample, or per-task statistics.",
        subcommands: [Show.self, Stats.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one sample: the image as ASCII art, the question and the references.")
        @Option(help: "Task: \(BenchmarkTask.all.map(\.name).joined(separator: ", ")).")
        var task: String
        @Option(help: "train, val or test.")
        var split: Split = .val
        @Option(help: "Sample index within the split.")
        var index = 0
        @Option(help: "Image side in pixels (a multiple of 8: two views of side/8 patches of 4 pixels).")
        var side = 64
        @Option(help: "Also write the image to this PNG file.")
        var png: String?

        func validate() throws {
            try check(side, in: 16...2048, "--side")
            guard side % 8 == 0 else { throw ValidationError("--side must be a multiple of 8, got \(side)") }
            try check(index, in: 0...Int(Int32.max), "--index")
        }

        func run() throws {
            let task = try benchmarkTask(task)
            let sample = task.sample(index, split: split, side: side)
            print(sample.image.ascii(columns: min(side, 96)))
            let geometry = VisionGeometry(grid: side / 8, patch: 4, crops: 5)
            print("task \(task.name) (\(task.metric.rawValue)), \(split.rawValue) #\(index)")
            print("prompt: " + Prompt(sample: sample, tokenizer: Tokenizer()).rendered(Tokenizer(), geometry: geometry))
            print("caption (language pretraining reads it instead of the image): " + sample.image.caption.joined(separator: " "))
            print("references: " + sample.references.map { "\"\($0)\"" }.joined(separator: ", "))
            if let png {
                do { try sample.image.png().write(to: URL(fileURLWithPath: png)) }
                catch { throw ValidationError("cannot write \(png): \(error.localizedDescription)") }
                print("wrote \(png)")
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per task: answer distribution, the chance-level score of an image-blind answerer, generation speed.")
        @Option(help: "Samples per split to draw.")
        var samples = 200
        @Option(help: "Image side in pixels.")
        var side = 64

        func validate() throws {
            try check(samples, in: 1...100_000, "--samples")
            try check(side, in: 16...2048, "--side")
        }

        func run() {
            print("task        metric                  top answers (val)                      chance  samples/s")
            for task in BenchmarkTask.all {
                let start = DispatchTime.now().uptimeNanoseconds
                let val = (0..<samples).map { task.sample($0, split: .val, side: side) }
                let chance = TrainingAnswers(task, side: side, count: samples).blindScore(val)
                let rate = Double(2 * samples) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                let top = answerFrequencies(val.map { $0.references[0] }).prefix(3)
                    .map { "\($0.answer.prefix(10)) \(100 * $0.count / samples)%" }.joined(separator: ", ")
                print(task.name.padding(toLength: 12, withPad: " ", startingAt: 0) + task.metric.rawValue.padding(toLength: 24, withPad: " ", startingAt: 0)
                      + top.padding(toLength: 39, withPad: " ", startingAt: 0) + String(format: "%6.3f  %9.0f", chance, rate))
            }
        }
    }
}

func benchmarkTask(_ name: String) throws -> BenchmarkTask {
    guard let task = BenchmarkTask.named(name) else {
        throw ValidationError("unknown task '\(name)'; expected one of \((BenchmarkTask.all + BenchmarkTask.probes).map(\.name).joined(separator: ", "))")
    }
    return task
}

extension Split: ExpressibleByArgument {}
