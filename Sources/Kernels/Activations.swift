import Foundation

/// SiLU (swish): y = x·σ(x).
public enum SiLU {
    @inline(__always) public static func value(_ x: Float) -> Float { x / (1 + fastExp(-x)) }

    @inline(__always) public static func derivative(_ x: Float) -> Float {
        let s = 1 / (1 + fastExp(-x))
        return s * (1 + x * (1 - s))
    }

    public static func forward(x: FloatPtr, y: FloatPtr, count: Int) {
        for i in 0..<count { y[i] = value(x[i]) }
    }

    /// Accumulates dx += dy · silu'(x).
    public static func backward(dy: FloatPtr, x: FloatPtr, dx: FloatPtr, count: Int) {
        for i in 0..<count { dx[i] += dy[i] * derivative(x[i]) }
    }
}

/// GELU in its tanh form, as in the LLaVA projector: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
public enum GELU {
    private static let c: Float = (2 / Float.pi).squareRoot()

    public static func forward(x: FloatPtr, y: FloatPtr, count: Int) {
        for i in 0..<count {
            let v = x[i]
            y[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
        }
    }

    /// Accumulates dx += dy · gelu'(x).
    public static func backward(dy: FloatPtr, x: FloatPtr, dx: FloatPtr, count: Int) {
        for i in 0..<count {
            let v = x[i]
            let t = tanhf(c * (v + 0.044715 * v * v * v))
            let d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)
            dx[i] += dy[i] * d
        }
    }
}

/// Softmax over each row of a [rows, cols] matrix.
public enum Softmax {
    public static func forward(x: FloatPtr, y: FloatPtr, rows: Int, cols: Int) {
        for r in 0..<rows {
            let xr = x + r * cols, yr = y + r * cols
            var m = -Float.infinity
            for j in 0..<cols { m = max(m, xr[j]) }
            var sum: Float = 0
            for j in 0..<cols { yr[j] = fastExp(xr[j] - m); sum += yr[j] }
            let inv = 1 / sum
            for j in 0..<cols { yr[j] *= inv }
        }
    }

    /// Accumulates dx += y ⊙ (dy − Σ dy·y), from the forward's output y.
    public static func backward(dy: FloatPtr, y: FloatPtr, dx: FloatPtr, rows: Int, cols: Int) {
        for r in 0..<rows {
            let yr = y + r * cols, dyr = dy + r * cols, dxr = dx + r * cols
            var dot: Float = 0
            for j in 0..<cols { dot += dyr[j] * yr[j] }
            for j in 0..<cols { dxr[j] += yr[j] * (dyr[j] - dot) }
        }
    }
}
