import ArgumentParser
import Decoder
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a safetensors checkpoint: its model configuration, tensors and parameter count.")

    @Argument(help: "A .safetensors file.")
    var file: String

    func run() throws {
        let (checkpoint, model) = try reportingBadInput { () throws -> (SafetensorsFile, LlamaModel) in
            (try SafetensorsFile(path: file), try LlamaModel.load(from: file))
        }
        let c = model.config
        print("\(file)")
        print("  hidden \(c.hidden), layers \(c.layers), heads \(c.heads) (kv \(c.kvHeads)), ffn \(c.ffn), vocab \(c.vocab), "
              + "rope theta \(c.ropeTheta), norm eps \(c.normEps), tied embeddings \(c.tiedEmbeddings)")
        print("  \(model.parameterCount) parameters in \(checkpoint.entries.count) tensors")
        for name in checkpoint.entries.keys.sorted() {
            let e = checkpoint.entries[name]!
            print("  \(name)  \(e.dtype) \(e.shape)")
        }
    }
}
