import Foundation

/// Which (query, key) pairs may attend: an arbitrary boolean matrix [queries, keys].
public struct AttentionMask: Sendable, Equatable {
    public let queries: Int
    public let keys: Int
    public private(set) var allowed: [Bool]

    public init(queries: Int, keys: Int, allowed: (_ query: Int, _ key: Int) -> Bool) {
        self.queries = queries
        self.keys = keys
        var a = [Bool](repeating: false, count: queries * keys)
        for q in 0..<queries { for k in 0..<keys { a[q * keys + k] = allowed(q, k) } }
        self.allowed = a
    }

    /// Causal over one sequence whose queries and keys are the same n tokens.
    public static func causal(_ n: Int) -> AttentionMask { AttentionMask(queries: n, keys: n) { $1 <= $0 } }

    public subscript(query: Int, key: Int) -> Bool { allowed[query * keys + key] }

    /// The first and one-past-last allowed key of a row, so the softmax can skip the masked tails.
    func span(ofRow q: Int) -> Range<Int> {
        let row = q * keys
        guard let first = (0..<keys).first(where: { allowed[row + $0] }) else { return 0..<0 }
        let last = (first..<keys).last(where: { allowed[row + $0] })!
        return first..<(last + 1)
    }
}

/// How heads are laid out in the Q/K/V rows: queries have `heads` heads, keys and values
/// `kvHeads` (grouped-query attention: each kv head serves heads/kvHeads query heads).
public struct HeadLayout: Sendable, Equatable {
    public let heads: Int, kvHeads: Int, headDim: Int
    public init(heads: Int, kvHeads: Int, headDim: Int) {
        precondition(heads % kvHeads == 0, "query heads must be a multiple of kv heads")
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
    }
    public var queryWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }
    public var scale: Float { 1 / Float(headDim).squareRoot() }
    @inline(__always) public func kvHead(of head: Int) -> Int { head / (heads / kvHeads) }
}

/// Scaled dot-product attention with a boolean mask, one sequence at a time.
/// Q is [queries, heads·headDim], K and V are [keys, kvHeads·headDim]; each head is a strided
/// column block of those rows, so no transposes are needed. Masked pairs are still multiplied
/// in the score product (dense), then get probability 0; a query with no allowed key outputs 0.
/// Heads run in parallel on the cores the caller may use (see `Parallel`).
public enum Attention {
    /// Writes out [queries, heads·headDim]. If `probs` ([heads, queries, keys]) is given the
    /// attention weights are kept there for the backward; otherwise each worker works on blocks
    /// of query rows in a scratch buffer, so the scores stay in cache.
    public static func forward(q: FloatPtr, k: FloatPtr, v: FloatPtr, out: FloatPtr,
                               probs: FloatPtr?, mask: AttentionMask, layout: HeadLayout) {
        let nq = mask.queries, nk = mask.keys, hd = layout.headDim
        let spans = (0..<nq).map { mask.span(ofRow: $0) }
        let block = probs == nil ? min(nq, 128) : nq
        let scratch: [FloatPtr] = probs == nil ? (0..<Parallel.workers).map { _ in .allocate(capacity: block * nk) } : []
        defer { scratch.forEach { $0.deallocate() } }
        mask.allowed.withUnsafeBufferPointer { allowed in
            Parallel.forEach(layout.heads) { h, worker in
                let g = layout.kvHead(of: h)
                for start in stride(from: 0, to: nq, by: block) {
                    let rows = min(block, nq - start)
                    let p = probs.map { $0 + h * nq * nk } ?? scratch[worker]
                    BLAS.gemm(transB: true, m: rows, n: nk, k: hd, alpha: layout.scale,
                              a: q + start * layout.queryWidth + h * hd, lda: layout.queryWidth,
                              b: k + g * hd, ldb: layout.kvWidth, c: p, ldc: nk)
                    for r in 0..<rows {
                        maskedSoftmax(p + r * nk, allowed: allowed.baseAddress! + (start + r) * nk,
                                      span: spans[start + r], count: nk)
                    }
                    BLAS.gemm(m: rows, n: hd, k: nk, a: p, lda: nk, b: v + g * hd, ldb: layout.kvWidth,
                              c: out + start * layout.queryWidth + h * hd, ldc: layout.queryWidth)
                }
            }
        }
    }

    /// Accumulates dq, dk, dv from dOut and the saved probabilities. Work is split by kv head, so
    /// the query heads that share a K/V head accumulate into it from one worker.
    public static func backward(dOut: FloatPtr, q: FloatPtr, k: FloatPtr, v: FloatPtr, probs: FloatPtr,
                                dq: FloatPtr, dk: FloatPtr, dv: FloatPtr,
                                mask: AttentionMask, layout: HeadLayout) {
        let nq = mask.queries, nk = mask.keys, hd = layout.headDim
        let qw = layout.queryWidth, kw = layout.kvWidth
        let spans = (0..<nq).map { mask.span(ofRow: $0) }
        let scratch: [FloatPtr] = (0..<Parallel.workers).map { _ in .allocate(capacity: nq * nk) }
        defer { scratch.forEach { $0.deallocate() } }
        let group = layout.heads / layout.kvHeads
        Parallel.forEach(layout.kvHeads) { g, worker in
            let dp = scratch[worker]
            for h in g * group..<(g + 1) * group {
                let p = probs + h * nq * nk
                // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place; P is 0 outside each row's span.
                BLAS.gemm(transB: true, m: nq, n: nk, k: hd, a: dOut + h * hd, lda: qw, b: v + g * hd, ldb: kw, c: dp, ldc: nk)
                for r in 0..<nq {
                    let pr = p + r * nk, dr = dp + r * nk, span = spans[r]
                    var dot: Float = 0
                    for j in span { dot += pr[j] * dr[j] }
                    for j in span { dr[j] = pr[j] * (dr[j] - dot) }
                    if span.lowerBound > 0 { dr.update(repeating: 0, count: span.lowerBound) }
                    if span.upperBound < nk { (dr + span.upperBound).update(repeating: 0, count: nk - span.upperBound) }
                }
                BLAS.gemm(m: nq, n: hd, k: nk, alpha: layout.scale, a: dp, lda: nk, b: k + g * hd, ldb: kw,
                          beta: 1, c: dq + h * hd, ldc: qw)
                BLAS.gemm(transA: true, m: nk, n: hd, k: nq, alpha: layout.scale, a: dp, lda: nk, b: q + h * hd, ldb: qw,
                          beta: 1, c: dk + g * hd, ldc: kw)
                BLAS.gemm(transA: true, m: nk, n: hd, k: nq, a: p, lda: nk, b: dOut + h * hd, ldb: qw,
                          beta: 1, c: dv + g * hd, ldc: kw)
            }
        }
    }

    /// Softmax of one score row over its allowed keys; masked keys get exactly 0. Written with
    /// selects rather than branches so the loops vectorise.
    @inline(__always)
    static func maskedSoftmax(_ row: FloatPtr, allowed: UnsafePointer<Bool>, span: Range<Int>, count: Int) {
        if span.lowerBound > 0 { row.update(repeating: 0, count: span.lowerBound) }
        if span.upperBound < count { (row + span.upperBound).update(repeating: 0, count: count - span.upperBound) }
        guard !span.isEmpty else { return }
        var m = -Float.infinity
        for j in span { m = max(m, allowed[j] ? row[j] : -Float.infinity) }
        var sum: Float = 0
        for j in span {
            let e = allowed[j] ? fastExp(row[j] - m) : 0
            row[j] = e
            sum += e
        }
        let inv = 1 / sum
        for j in span { row[j] *= inv }
    }
}
