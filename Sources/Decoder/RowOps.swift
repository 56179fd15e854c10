import Kernels

/// Rows of a [n, d] matrix gathered into a new [rows.count, d] matrix.
func gather(_ x: Tensor, rows: [Int]) -> Tensor {
    let d = x.shape[1], out = Tensor(shape: [rows.count, d])
    for (i, r) in rows.enumerated() { (out.data + i * d).update(from: x.data + r * d, count: d) }
    return out
}

/// dst[rows[i]] += src[i]: the backward of `gather`, and how a sub-block's update joins the stream.
func scatterAdd(_ src: Tensor, rows: [Int], into dst: Tensor) {
    let d = dst.shape[1]
    for (i, r) in rows.enumerated() {
        let s = src.data + i * d, t = dst.data + r * d
        for j in 0..<d { t[j] += s[j] }
    }
}

/// dst[rows[i]] = src[i].
func scatter(_ src: Tensor, rows: [Int], into dst: Tensor) {
    let d = dst.shape[1]
    for (i, r) in rows.enumerated() { (dst.data + r * d).update(from: src.data + i * d, count: d) }
}

extension Tensor {
    /// y = x·Wᵀ for a Parameter W [out, in].
    func linear(_ w: Parameter) -> Tensor {
        let out = Tensor(shape: [shape[0], w.shape[0]])
        Linear.forward(x: data, w: w.value.data, y: out.data, rows: shape[0], inFeatures: w.shape[1], outFeatures: w.shape[0])
        return out
    }

    /// The backward of `linear`: accumulates W's gradient and returns dx (added to `into` if given).
    @discardableResult
    func linearBackward(_ w: Parameter, input x: Tensor, into dx: Tensor? = nil) -> Tensor {
        let dx = dx ?? Tensor(shape: x.shape)
        Linear.backward(dy: data, x: x.data, w: w.value.data, dx: dx.data, dw: w.grad.data,
                        rows: shape[0], inFeatures: w.shape[1], outFeatures: w.shape[0])
        return dx
    }

    /// RMSNorm of every row with gain `w`; returns the output and 1/rms per row.
    func rmsNorm(_ w: Parameter, eps: Float) -> (Tensor, Tensor) {
        let y = Tensor(shape: shape), rstd = Tensor(shape: [shape[0]])
        RMSNorm.forward(x: data, weight: w.value.data, y: y.data, rstd: rstd.data, rows: shape[0], dim: shape[1], eps: eps)
        return (y, rstd)
    }

    /// The backward of `rmsNorm` with dy = self: accumulates w's gradient, returns dx (added to `into` if given).
    @discardableResult
    func rmsNormBackward(_ w: Parameter, input x: Tensor, rstd: Tensor, into dx: Tensor? = nil) -> Tensor {
        let dx = dx ?? Tensor(shape: x.shape)
        RMSNorm.backward(dy: data, x: x.data, weight: w.value.data, rstd: rstd.data, dx: dx.data, dWeight: w.grad.data,
                         rows: shape[0], dim: shape[1])
        return dx
    }

    func silu() -> Tensor {
        let y = Tensor(shape: shape)
        SiLU.forward(x: data, y: y.data, count: count)
        return y
    }

    /// The backward of `silu` with dy = self, at input x.
    func siluBackward(input x: Tensor) -> Tensor {
        let dx = Tensor(shape: x.shape)
        SiLU.backward(dy: data, x: x.data, dx: dx.data, count: count)
        return dx
    }

    static func + (a: Tensor, b: Tensor) -> Tensor {
        precondition(a.shape == b.shape)
        let y = a.copy()
        for i in 0..<y.count { y.data[i] += b.data[i] }
        return y
    }
}
