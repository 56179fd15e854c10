import ArgumentParser
import Decoder
import Foundation
import Training

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a safetensors checkpoint: its model configuration, tensors and parameter count.")

    @Argument(help: "A .safetensors file.")
    var file: String

    func run() throws {
        let checkpoint = try reportingBadInput { try SafetensorsFile(path: file) }
        print("\(file)")
        if checkpoint.metadata["squeeze.run"] != nil {
            // A multimodal run's model or checkpoint (`squeeze train`): its run configuration.
            let run = try reportingBadInput { try MultimodalRun.savedConfig(checkpoint) }
            print("  a multimodal run: preset \(run.preset), variant \(run.variant), seed \(run.seed), grid \(run.grid), patch \(run.patch), "
                  + "crops \(run.crops); steps \(run.languageSteps) + \(run.stage1Steps) + \(run.stage2Steps), batch \(run.batchSize)"
                  + (checkpoint.metadata["squeeze.step"].map { "; written at step \($0)" } ?? ""))
        } else {
            let c = try reportingBadInput { try LlamaModel.load(from: file) }.config
            print("  hidden \(c.hidden), layers \(c.layers), heads \(c.heads) (kv \(c.kvHeads)), ffn \(c.ffn), vocab \(c.vocab), "
                  + "rope theta \(c.ropeTheta), norm eps \(c.normEps), tied embeddings \(c.tiedEmbeddings)")
        }
        let weights = checkpoint.entries.filter { !$0.key.hasPrefix("adam.") }
        print("  \(weights.values.reduce(0) { $0 + $1.shape.reduce(1, *) }) parameters in \(weights.count) tensors"
              + (weights.count < checkpoint.entries.count ? " (and \(checkpoint.entries.count - weights.count) optimiser moments)" : ""))
        for name in checkpoint.entries.keys.sorted() {
            let e = checkpoint.entries[name]!
            print("  \(name)  \(e.dtype) \(e.shape)")
        }
    }
}
