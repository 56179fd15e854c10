import LayerGraph

/// The prompt template: system text, the image (each crop's G×G vision tokens and a newline),
/// the question, then the answer the model is trained to produce, ended by <eos>. A training
/// prompt is a conversation: the sample's follow-up questions come after its first, each turn's
/// answer learned as the last one's is.
public struct Prompt: Sendable {
    public static let system = "Answer briefly."   // short: every token of it is computed for every sample

    public let system: [Int32]
    /// The conversation up to the last answer: each earlier turn's question, answer marker,
    /// answer and <eos>, then the last question and its marker.
    public let question: [Int32]
    /// The last answer and <eos> (empty without the answer: a prefill for generation).
    public let answer: [Int32]
    /// The next-token target of each token of `question` and of `answer`, -1 where none: an
    /// answer marker predicts its answer's first token, each answer token the next, up to <eos>.
    public let questionTargets: [Int32], answerTargets: [Int32]

    /// Whether the image is in the prompt; if not, its caption is, as text before the first
    /// question (language pretraining: the decoder learns to answer from text before it sees images).
    public let seesImage: Bool

    /// With the answer, the sample's follow-up turns are asked too; without it only its question.
    public init(sample: Sample, tokenizer: Tokenizer, withAnswer: Bool = true, seesImage: Bool = true) {
        system = [Tokenizer.bos] + tokenizer.encode(Prompt.system)
        self.seesImage = seesImage
        let turns = withAnswer ? [Turn(sample.question, sample.references[0])] + sample.followUps : [Turn(sample.question, "")]
        var tokens = seesImage ? [] : tokenizer.encode(" " + sample.image.caption.joined(separator: " "))
        var targets = [Int32](repeating: -1, count: tokens.count), lastAnswer = 0
        for turn in turns {
            let asked = tokenizer.encode(" " + turn.question) + [Tokenizer.answer]
            let answered = withAnswer ? tokenizer.encode(turn.answer) + [Tokenizer.eos] : []
            // The marker and each answer token predict the token after them; <eos> predicts nothing.
            targets += Array(repeating: -1, count: asked.count - 1) + answered + [-1]
            tokens += asked
            lastAnswer = tokens.count
            tokens += answered
        }
        (question, answer) = (Array(tokens[..<lastAnswer]), Array(tokens[lastAnswer...]))
        (questionTargets, answerTargets) = (Array(targets[..<lastAnswer]), Array(targets[lastAnswer...]))
    }

    /// The token layout of this prompt over an image seen as `geometry.crops` crops.
    public func layout(_ geometry: VisionGeometry) -> TokenLayout {
        TokenLayout(grid: geometry.grid, crops: seesImage ? geometry.crops : 0, system: system.count, question: question.count, answer: answer.count)
    }

    /// The prompt as text, the image shown as a placeholder.
    public func rendered(_ tokenizer: Tokenizer, geometry: VisionGeometry) -> String {
        let conversation = question.split(separator: Tokenizer.eos, omittingEmptySubsequences: false).map { tokenizer.decode(Array($0)) }
        return tokenizer.decode(system) + (seesImage ? " <image: \(geometry.crops) crops × (\(geometry.grid)×\(geometry.grid) + newline)>" : "")
            + conversation.joined(separator: "<eos>") + tokenizer.decode(answer) + (answer.isEmpty ? "" : "<eos>")
    }
}
