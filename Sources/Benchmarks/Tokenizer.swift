/// A character-level tokenizer over the task language, with special tokens. Every character the
/// bitmap font draws is spellable, so numbers and words read from images can be answered.
public struct Tokenizer: Sendable {
    public static let pad: Int32 = 0, bos: Int32 = 1, eos: Int32 = 2, image: Int32 = 3, answer: Int32 = 4
    static let specials = ["<pad>", "<bos>", "<eos>", "<image>", "<answer>"]
    static let alphabet: [Character] = Array(" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;%-+/?!$()[]'\"")

    private let ids: [Character: Int32]

    public init() {
        ids = Dictionary(uniqueKeysWithValues: Tokenizer.alphabet.enumerated().map { ($1, Int32(Tokenizer.specials.count + $0)) })
    }

    public var vocabularySize: Int { Tokenizer.specials.count + Tokenizer.alphabet.count }

    /// Token ids of a text; a character outside the alphabet is an error of the task generator.
    public func encode(_ text: String) -> [Int32] {
        text.map { c in
            guard let id = ids[c] else { preconditionFailure("'\(c)' is not in the tokenizer's alphabet") }
            return id
        }
    }

    /// Text of token ids; special tokens are spelled by name, except that decoding stops at <eos>.
    public func decode(_ tokens: [Int32]) -> String {
        var out = ""
        for t in tokens {
            if t == Tokenizer.eos { break }
            let i = Int(t)
            if i < Tokenizer.specials.count { out += Tokenizer.specials[i] } else if i - Tokenizer.specials.count < Tokenizer.alphabet.count {
                out.append(Tokenizer.alphabet[i - Tokenizer.specials.count])
            }
        }
        return out
    }
}
