import Foundation

/// Rotary position embedding in the Hugging Face Llama convention (rotate_half: the first and
/// second halves of each head form the pairs). Each row carries its own position id, so queries
/// and keys can be rotated with different ids.
public struct Rope: Sendable {
    public let headDim: Int
    public let theta: Float
    private let inverseFrequencies: [Double]

    public init(headDim: Int, theta: Float) {
        precondition(headDim % 2 == 0, "RoPE needs an even head size")
        self.headDim = headDim
        self.theta = theta
        inverseFrequencies = (0..<headDim / 2).map { 1 / pow(Double(theta), Double(2 * $0) / Double(headDim)) }
    }

    /// Rotates x [rows, heads·headDim] in place by the angle of each row's position.
    public func forward(_ x: FloatPtr, positions: [Int32], heads: Int) {
        apply(x, positions: positions, heads: heads, sign: 1)
    }

    /// The rotation is orthogonal, so the backward rotates the gradient by the opposite angle.
    public func backward(_ dx: FloatPtr, positions: [Int32], heads: Int) {
        apply(dx, positions: positions, heads: heads, sign: -1)
    }

    private func apply(_ x: FloatPtr, positions: [Int32], heads: Int, sign: Float) {
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: half), sines = cosines
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * inverseFrequencies[i]
                cosines[i] = Float(cos(angle)); sines[i] = sign * Float(sin(angle))
            }
            for h in 0..<heads {
                let v = x + (r * heads + h) * headDim
                for i in 0..<half {
                    let a = v[i], b = v[i + half]
                    v[i] = a * cosines[i] - b * sines[i]
                    v[i + half] = b * cosines[i] + a * sines[i]
                }
            }
        }
    }
}
