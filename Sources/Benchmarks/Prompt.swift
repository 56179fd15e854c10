import LayerGraph

/// The prompt template: system text, the image (each crop's G×G vision tokens and a newline),
/// the question, then the answer the model is trained to produce, ended by <eos>.
public struct Prompt: Sendable {
    public static let system = "Answer briefly."   // short: every token of it is computed for every sample

    public let system: [Int32]
    public let question: [Int32]
    public let answer: [Int32]

    public init(sample: Sample, tokenizer: Tokenizer, withAnswer: Bool = true) {
        system = [Tokenizer.bos] + tokenizer.encode(Prompt.system)
        question = tokenizer.encode(" " + sample.question) + [Tokenizer.answer]
        answer = withAnswer ? tokenizer.encode(sample.references[0]) + [Tokenizer.eos] : []
    }

    /// The token layout of this prompt over an image seen as `geometry.crops` crops.
    public func layout(_ geometry: VisionGeometry) -> TokenLayout {
        TokenLayout(grid: geometry.grid, crops: geometry.crops, system: system.count, question: question.count, answer: answer.count)
    }

    /// The prompt as text, the image shown as a placeholder.
    public func rendered(_ tokenizer: Tokenizer, geometry: VisionGeometry) -> String {
        tokenizer.decode(system) + " <image: \(geometry.crops) crops × (\(geometry.grid)×\(geometry.grid) + newline)>"
            + tokenizer.decode(question) + tokenizer.decode(answer) + (answer.isEmpty ? "" : "<eos>")
    }
}
