import Kernels

/// A word-level tokenizer over the task language, with characters to fall back on, as an LLM's
/// BPE vocabulary has its language's common words as single tokens and spells the rest: each
/// word the prompts and questions use (a run of letters, with the space before it) is one token;
/// digits, punctuation, spaces and every other word are spelled character by character (as
/// Llama spells numbers digit by digit, and BPE splits a rare word). Every character the bitmap
/// font draws is spellable, so what is read from an image is answered character by character.
/// Single-token question words matter for learning to look: a question's key word ("total",
/// "red") is one token to match against the image, not a run of characters to assemble first.
public struct Tokenizer: Sendable {
    public static let pad: Int32 = 0, bos: Int32 = 1, eos: Int32 = 2, image: Int32 = 3, answer: Int32 = 4
    static let specials = ["<pad>", "<bos>", "<eos>", "<image>", "<answer>"]
    static let alphabet: [Character] = Array(" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;%-+/?!$()[]'\"")

    /// The word tokens, learned once from the suite's training text as a BPE vocabulary is
    /// learned from a corpus: every word (with and without a space before it) of the system prompt
    /// and of the questions of the first training samples of every task, in sorted order.
    /// Answers and captions are left out: words drawn in images are read glyph by glyph.
    public static let words: [String] = {
        var seen: Set<String> = []
        func learn(_ text: String) {
            for piece in pieces(text) where piece.last!.isLetter { seen.insert(piece); seen.insert(piece.hasPrefix(" ") ? String(piece.dropFirst()) : " " + piece) }
        }
        learn(Prompt.system)
        let tasks = BenchmarkTask.all + BenchmarkTask.probes, perTask = 64
        let samples = Parallel.map(tasks.count * perTask) { tasks[$0 / perTask].sample($0 % perTask, split: .train, side: 96) }
        for s in samples { for question in [s.question] + s.followUps.map(\.question) { learn(question) } }
        return seen.sorted()
    }()

    /// A text cut into pieces: runs of letters, each with the space before it if there is one,
    /// and every other character alone.
    static func pieces(_ text: String) -> [String] {
        var out: [String] = [], word = "", spaceBefore = false
        for c in text {
            if c.isASCII && c.isLetter { word.append(c); continue }
            if !word.isEmpty { out.append((spaceBefore ? " " : "") + word); word = ""; spaceBefore = false }
            if spaceBefore { out.append(" "); spaceBefore = false }   // a space no word follows
            if c == " " { spaceBefore = true } else { out.append(String(c)) }
        }
        if !word.isEmpty { out.append((spaceBefore ? " " : "") + word) } else if spaceBefore { out.append(" ") }
        return out
    }

    /// Two maps, since a one-letter word ("a", "A") is a token apart from its character.
    private let characterIDs: [Character: Int32], wordIDs: [String: Int32], spellings: [String]

    public init() {
        spellings = Tokenizer.specials + Tokenizer.alphabet.map(String.init) + Tokenizer.words
        characterIDs = Dictionary(uniqueKeysWithValues: Tokenizer.alphabet.enumerated().map { ($1, Int32(Tokenizer.specials.count + $0)) })
        let firstWord = spellings.count - Tokenizer.words.count
        wordIDs = Dictionary(uniqueKeysWithValues: Tokenizer.words.enumerated().map { ($1, Int32(firstWord + $0)) })
    }

    public var vocabularySize: Int { spellings.count }

    /// Token ids of a text; a character outside the alphabet is an error of the task generator.
    public func encode(_ text: String) -> [Int32] {
        Tokenizer.pieces(text).flatMap { piece -> [Int32] in
            if let id = wordIDs[piece] { return [id] }
            return piece.map { c in
                guard let id = characterIDs[c] else { preconditionFailure("'\(c)' is not in the tokenizer's alphabet") }
                return id
            }
        }
    }

    /// Text of token ids; special tokens are spelled by name, except that decoding stops at <eos>.
    public func decode(_ tokens: [Int32]) -> String {
        var out = ""
        for t in tokens {
            if t == Tokenizer.eos { break }
            if spellings.indices.contains(Int(t)) { out += spellings[Int(t)] }
        }
        return out
    }
}
