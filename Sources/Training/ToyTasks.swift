import Decoder
import Kernels

/// Built-in sequence tasks for checking that a decoder learns: a prompt of random symbols, a
/// separator, then the answer. Only the answer (and its end marker) carries loss.
public enum ToyTask: String, CaseIterable, Codable, Sendable {
    /// Repeat the prompt.
    case copy
    /// Repeat the prompt backwards.
    case reverse

    public static let bos: Int32 = 0, separator: Int32 = 1, eos: Int32 = 2
    static let firstSymbol: Int32 = 3

    /// A batch of `count` sequences with prompt lengths drawn from `lengths`, so sequences differ in length.
    public func batch(count: Int, lengths: ClosedRange<Int>, vocab: Int, rng: inout SeededGenerator) -> TokenBatch {
        precondition(vocab > Int(ToyTask.firstSymbol) + 1, "the toy tasks need a vocabulary of at least 5")
        var inputs: [[Int32]] = [], targets: [[Int32]] = []
        for _ in 0..<count {
            let n = lengths.lowerBound + rng.nextInt(below: lengths.count)
            let prompt = (0..<n).map { _ in ToyTask.firstSymbol + Int32(rng.nextInt(below: vocab - Int(ToyTask.firstSymbol))) }
            let answer = self == .copy ? prompt : prompt.reversed()
            let sequence = [ToyTask.bos] + prompt + [ToyTask.separator] + answer + [ToyTask.eos]
            inputs.append(Array(sequence.dropLast()))
            // Position i predicts token i+1; only tokens after the separator are scored.
            targets.append((1..<sequence.count).map { $0 > n + 1 ? sequence[$0] : -1 })
        }
        return TokenBatch(inputs: inputs, targets: targets)
    }
}

/// Random tokens with a next-token loss everywhere: the shape of the training-throughput benchmark.
public func randomTokenBatch(count: Int, length: Int, vocab: Int, rng: inout SeededGenerator) -> TokenBatch {
    var inputs: [[Int32]] = [], targets: [[Int32]] = []
    for _ in 0..<count {
        let s = (0...length).map { _ in Int32(rng.nextInt(below: vocab)) }
        inputs.append(Array(s.dropLast()))
        targets.append(Array(s.dropFirst()))
    }
    return TokenBatch(inputs: inputs, targets: targets)
}
