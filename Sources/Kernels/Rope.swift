import Foundation

/// Rotary position embedding in the Hugging Face Llama convention (rotate_half: the first and
/// second halves of each head form the pairs; angle p·θ^(−2i/headDim)). Each row carries its own
/// position id, so queries and keys can be rotated with different ids.
public struct Rope: Sendable {
    public let headDim: Int
    public let theta: Float

    public init(headDim: Int, theta: Float) {
        precondition(headDim % 2 == 0, "RoPE needs an even head size")
        self.headDim = headDim
        self.theta = theta
    }

    /// The cosines and sines for a list of position ids, computed once and reused by every layer.
    public func angles(for positions: [Int32]) -> RotaryAngles {
        let half = headDim / 2
        let inverse = (0..<half).map { 1 / pow(Double(theta), Double(2 * $0) / Double(headDim)) }
        var cosines = [Float](repeating: 0, count: positions.count * half), sines = cosines
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * inverse[i]
                cosines[r * half + i] = Float(cos(angle))
                sines[r * half + i] = Float(sin(angle))
            }
        }
        return RotaryAngles(headDim: headDim, cosines: cosines, sines: sines)
    }

    public func forward(_ x: FloatPtr, positions: [Int32], heads: Int) {
        angles(for: positions).rotate(x, heads: heads)
    }

    public func backward(_ dx: FloatPtr, positions: [Int32], heads: Int) {
        angles(for: positions).rotateBack(dx, heads: heads)
    }
}

/// Rotations for specific rows: `rotate` is the forward; the rotation is orthogonal, so the
/// backward (`rotateBack`) rotates the gradient by the opposite angle.
public struct RotaryAngles: Sendable {
    public let headDim: Int
    let cosines: [Float], sines: [Float]

    public var rows: Int { cosines.count / (headDim / 2) }

    /// Rotates x [rows, heads·headDim] in place.
    public func rotate(_ x: FloatPtr, heads: Int) { apply(x, heads: heads, sign: 1) }

    public func rotateBack(_ dx: FloatPtr, heads: Int) { apply(dx, heads: heads, sign: -1) }

    private func apply(_ x: FloatPtr, heads: Int, sign: Float) {
        let half = headDim / 2
        cosines.withUnsafeBufferPointer { cosines in
            sines.withUnsafeBufferPointer { sines in
                for r in 0..<rows {
                    let c = cosines.baseAddress! + r * half, s = sines.baseAddress! + r * half
                    for h in 0..<heads {
                        let v = x + (r * heads + h) * headDim
                        for i in 0..<half {
                            let a = v[i], b = v[i + half], sn = sign * s[i]
                            v[i] = a * c[i] - b * sn
                            v[i + half] = b * c[i] + a * sn
                        }
                    }
                }
            }
        }
    }
}
