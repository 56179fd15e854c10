/// y = x / sqrt(mean(x²) + eps) · w, per row. The forward saves 1/rms per row for the backward.
public enum RMSNorm {
    public static func forward(x: FloatPtr, weight: FloatPtr, y: FloatPtr, rstd: FloatPtr,
                               rows: Int, dim: Int, eps: Float) {
        for r in 0..<rows {
            let xr = x + r * dim, yr = y + r * dim
            var ss: Float = 0
            for i in 0..<dim { ss += xr[i] * xr[i] }
            let s = 1 / (ss / Float(dim) + eps).squareRoot()
            rstd[r] = s
            for i in 0..<dim { yr[i] = xr[i] * s * weight[i] }
        }
    }

    /// Accumulates dx and dWeight.
    public static func backward(dy: FloatPtr, x: FloatPtr, weight: FloatPtr, rstd: FloatPtr,
                                dx: FloatPtr, dWeight: FloatPtr?, rows: Int, dim: Int) {
        for r in 0..<rows {
            let xr = x + r * dim, dyr = dy + r * dim, dxr = dx + r * dim
            let s = rstd[r]
            var dot: Float = 0  // Σ dy·w·x
            for i in 0..<dim { dot += dyr[i] * weight[i] * xr[i] }
            let c = dot * s * s * s / Float(dim)
            for i in 0..<dim { dxr[i] += dyr[i] * weight[i] * s - xr[i] * c }
            if let dWeight { for i in 0..<dim { dWeight[i] += dyr[i] * xr[i] * s } }
        }
    }
}
