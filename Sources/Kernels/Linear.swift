/// Pointers to Float32 buffers; kernels read and write through them without bounds checks.
public typealias FloatPtr = UnsafeMutablePointer<Float>

/// y = x·Wᵀ + b, with W stored [out, in] as in Hugging Face checkpoints.
public enum Linear {
    public static func forward(x: FloatPtr, w: FloatPtr, bias: FloatPtr? = nil, y: FloatPtr,
                               rows: Int, inFeatures: Int, outFeatures: Int) {
        BLAS.gemm(transB: true, m: rows, n: outFeatures, k: inFeatures,
                  a: x, lda: inFeatures, b: w, ldb: inFeatures, c: y, ldc: outFeatures)
        if let bias {
            for r in 0..<rows {
                let yr = y + r * outFeatures
                for o in 0..<outFeatures { yr[o] += bias[o] }
            }
        }
    }

    /// Accumulates dx += dy·W, dW += dyᵀ·x, db += Σ_rows dy. Pass nil for what is not needed.
    public static func backward(dy: FloatPtr, x: FloatPtr, w: FloatPtr,
                                dx: FloatPtr?, dw: FloatPtr?, dbias: FloatPtr? = nil,
                                rows: Int, inFeatures: Int, outFeatures: Int) {
        if let dx {
            BLAS.gemm(m: rows, n: inFeatures, k: outFeatures, a: dy, lda: outFeatures,
                      b: w, ldb: inFeatures, beta: 1, c: dx, ldc: inFeatures)
        }
        if let dw {
            BLAS.gemm(transA: true, m: outFeatures, n: inFeatures, k: rows, a: dy, lda: outFeatures,
                      b: x, ldb: inFeatures, beta: 1, c: dw, ldc: inFeatures)
        }
        if let dbias {
            for r in 0..<rows {
                let dyr = dy + r * outFeatures
                for o in 0..<outFeatures { dbias[o] += dyr[o] }
            }
        }
    }
}

/// Row lookup in a [vocab, dim] table.
public enum Embedding {
    public static func forward(ids: [Int32], table: FloatPtr, out: FloatPtr, dim: Int) {
        for (t, id) in ids.enumerated() {
            (out + t * dim).update(from: table + Int(id) * dim, count: dim)
        }
    }

    /// Accumulates dTable[id] += dOut[t] for every position t.
    public static func backward(ids: [Int32], dOut: FloatPtr, dTable: FloatPtr, dim: Int) {
        for (t, id) in ids.enumerated() {
            let src = dOut + t * dim, dst = dTable + Int(id) * dim
            for i in 0..<dim { dst[i] += src[i] }
        }
    }
}
