import Foundation

/// Softmax cross-entropy over the rows whose target is not negative (a negative target means
/// "no loss here": prompt tokens, padding).
public enum CrossEntropy {
    /// Returns the summed loss and the number of counted rows; saves each row's log-sum-exp.
    public static func forward(logits: FloatPtr, targets: [Int32], lse: FloatPtr,
                               vocab: Int) -> (sum: Double, count: Int) {
        var sum = 0.0, count = 0
        for (r, target) in targets.enumerated() {
            let lr = logits + r * vocab
            var m = -Float.infinity
            for j in 0..<vocab { m = max(m, lr[j]) }
            var s: Float = 0
            for j in 0..<vocab { s += fastExp(lr[j] - m) }
            lse[r] = m + logf(s)
            if target >= 0 {
                sum += Double(lse[r] - lr[Int(target)])
                count += 1
            }
        }
        return (sum, count)
    }

    /// Accumulates dLogits += scale · (softmax − onehot) on the counted rows.
    public static func backward(logits: FloatPtr, targets: [Int32], lse: FloatPtr,
                                dLogits: FloatPtr, vocab: Int, scale: Float) {
        for (r, target) in targets.enumerated() where target >= 0 {
            let lr = logits + r * vocab, dr = dLogits + r * vocab, l = lse[r]
            for j in 0..<vocab { dr[j] += scale * fastExp(lr[j] - l) }
            dr[Int(target)] -= scale
        }
    }
}
