import Foundation

/// Which (query, key) pairs may attend: an arbitrary boolean matrix [queries, keys].
public struct AttentionMask: Sendable, Equatable {
    public let queries: Int
    public let keys: Int
    public let allowed: [Bool]
    /// 0 where allowed, −∞ where masked: added to the scores, so the softmax has no branches.
    let bias: [Float]
    /// Each row's first and one-past-last allowed key, so the softmax can skip the masked tails.
    let spans: [Range<Int>]
    /// Each block of query rows with the union of its rows' key spans.
    let blocks: [(rows: Range<Int>, keys: Range<Int>)]

    public init(queries: Int, keys: Int, allowed: (_ query: Int, _ key: Int) -> Bool) {
        self.queries = queries
        self.keys = keys
        var a = [Bool](repeating: false, count: queries * keys)
        for q in 0..<queries { for k in 0..<keys { a[q * keys + k] = allowed(q, k) } }
        self.allowed = a
        bias = a.map { $0 ? 0 : -Float.infinity }
        spans = (0..<queries).map { q in
            let row = a[q * keys..<(q + 1) * keys]
            guard let first = row.firstIndex(of: true), let last = row.lastIndex(of: true) else { return 0..<0 }
            return first - q * keys..<last - q * keys + 1
        }
        blocks = stride(from: 0, to: queries, by: AttentionMask.rowBlock).map { [spans] start in
            let rows = start..<min(start + AttentionMask.rowBlock, queries)
            let used = spans[rows].filter { !$0.isEmpty }
            return (rows, used.isEmpty ? 0..<0 : used.map(\.lowerBound).min()!..<used.map(\.upperBound).max()!)
        }
    }

    public static func == (a: AttentionMask, b: AttentionMask) -> Bool {
        a.queries == b.queries && a.keys == b.keys && a.allowed == b.allowed
    }

    /// Causal over one sequence whose queries and keys are the same n tokens.
    public static func causal(_ n: Int) -> AttentionMask { AttentionMask(queries: n, keys: n) { $1 <= $0 } }

    public subscript(query: Int, key: Int) -> Bool { allowed[query * keys + key] }

    /// Query rows are processed in blocks of this many; a block multiplies only the keys
    /// between the first and last key that any of its rows may attend to.
    public static let rowBlock = 64

    /// (query, key) pairs whose scores the kernel computes: for each block of `rowBlock` query
    /// rows, rows × the width of the block's key span. Dense attention is queries × keys.
    public var computedPairs: Int {
        blocks.reduce(0) { $0 + $1.rows.count * $1.keys.count }
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
/// column block of those rows, so no transposes are needed. Query rows go in blocks
/// (`AttentionMask.rowBlock`); a block's scores are computed for every key in its key span, the
/// masked ones among them get probability 0, and keys outside the span are never multiplied
/// (`AttentionMask.computedPairs` counts what is). A query with no allowed key outputs 0.
/// Heads run in parallel on the cores the caller may use (see `Parallel`).
public enum Attention {
    /// Writes out [queries, heads·headDim]. If `probs` ([heads, queries, keys]) is given the
    /// attention weights are kept there for the backward (0 outside the key spans); otherwise
    /// each worker reuses one block-sized scratch buffer, so the scores stay in cache.
    public static func forward(q: FloatPtr, k: FloatPtr, v: FloatPtr, out: FloatPtr,
                               probs: FloatPtr?, mask: AttentionMask, layout: HeadLayout) {
        let nq = mask.queries, nk = mask.keys, hd = layout.headDim, qw = layout.queryWidth, kw = layout.kvWidth
        let spans = mask.spans, blocks = mask.blocks
        let scratch: [FloatPtr] = probs == nil ? (0..<Parallel.workers).map { _ in .allocate(capacity: AttentionMask.rowBlock * nk) } : []
        defer { scratch.forEach { $0.deallocate() } }
        mask.bias.withUnsafeBufferPointer { bias in
            Parallel.forEach(layout.heads) { h, worker in
                let g = layout.kvHead(of: h)
                for (rows, keys) in blocks {
                    // Scores of this block: rows × keys, at column keys.lowerBound of rows that are nk wide.
                    let p = probs.map { $0 + (h * nq + rows.lowerBound) * nk } ?? scratch[worker]
                    BLAS.gemm(transB: true, m: rows.count, n: keys.count, k: hd, alpha: layout.scale,
                              a: q + rows.lowerBound * qw + h * hd, lda: qw,
                              b: k + keys.lowerBound * kw + g * hd, ldb: kw, c: p + keys.lowerBound, ldc: nk)
                    // Kept weights are zero wherever they are not computed; scratch only where it is read.
                    let window = probs == nil ? keys : 0..<nk
                    for (i, r) in rows.enumerated() {
                        maskedSoftmax(p + i * nk, bias: bias.baseAddress! + r * nk, span: spans[r], window: window)
                    }
                    BLAS.gemm(m: rows.count, n: hd, k: keys.count, a: p + keys.lowerBound, lda: nk,
                              b: v + keys.lowerBound * kw + g * hd, ldb: kw,
                              c: out + rows.lowerBound * qw + h * hd, ldc: qw)
                }
            }
        }
    }

    /// Accumulates dq, dk, dv from dOut and the saved probabilities. Work is split by kv head, so
    /// the query heads that share a K/V head accumulate into it from one worker.
    public static func backward(dOut: FloatPtr, q: FloatPtr, k: FloatPtr, v: FloatPtr, probs: FloatPtr,
                                dq: FloatPtr, dk: FloatPtr, dv: FloatPtr,
                                mask: AttentionMask, layout: HeadLayout) {
        let nq = mask.queries, nk = mask.keys, hd = layout.headDim, qw = layout.queryWidth, kw = layout.kvWidth
        let blocks = mask.blocks
        let scratch: [FloatPtr] = (0..<Parallel.workers).map { _ in .allocate(capacity: AttentionMask.rowBlock * nk) }
        defer { scratch.forEach { $0.deallocate() } }
        let group = layout.heads / layout.kvHeads
        Parallel.forEach(layout.kvHeads) { g, worker in
            let ds = scratch[worker]
            for h in g * group..<(g + 1) * group {
                for (rows, keys) in blocks where !keys.isEmpty {
                    let p = probs + (h * nq + rows.lowerBound) * nk + keys.lowerBound, d = ds + keys.lowerBound
                    let r0 = rows.lowerBound
                    // dP = dO·Vᵀ over the block's keys, then dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place.
                    BLAS.gemm(transB: true, m: rows.count, n: keys.count, k: hd, a: dOut + r0 * qw + h * hd, lda: qw,
                              b: v + keys.lowerBound * kw + g * hd, ldb: kw, c: d, ldc: nk)
                    for i in 0..<rows.count {
                        let pr = p + i * nk, dr = d + i * nk
                        var dot: Float = 0   // P is 0 outside the row's own span, and so is dS
                        for j in 0..<keys.count { dot += pr[j] * dr[j] }
                        for j in 0..<keys.count { dr[j] = pr[j] * (dr[j] - dot) }
                    }
                    BLAS.gemm(m: rows.count, n: hd, k: keys.count, alpha: layout.scale, a: d, lda: nk,
                              b: k + keys.lowerBound * kw + g * hd, ldb: kw, beta: 1, c: dq + r0 * qw + h * hd, ldc: qw)
                    BLAS.gemm(transA: true, m: keys.count, n: hd, k: rows.count, alpha: layout.scale, a: d, lda: nk,
                              b: q + r0 * qw + h * hd, ldb: qw, beta: 1, c: dk + keys.lowerBound * kw + g * hd, ldc: kw)
                    BLAS.gemm(transA: true, m: keys.count, n: hd, k: rows.count, a: p, lda: nk,
                              b: dOut + r0 * qw + h * hd, ldb: qw, beta: 1, c: dv + keys.lowerBound * kw + g * hd, ldc: kw)
                }
            }
        }
    }

    /// Softmax of one score row over its allowed keys; masked keys in `window` get exactly 0.
    /// Eight lanes at a time (`SIMD8`): the mask is an additive bias, so no lane branches.
    @inline(__always)
    static func maskedSoftmax(_ row: FloatPtr, bias: UnsafePointer<Float>, span: Range<Int>, window: Range<Int>) {
        guard !span.isEmpty else { (row + window.lowerBound).update(repeating: 0, count: window.count); return }
        (row + window.lowerBound).update(repeating: 0, count: span.lowerBound - window.lowerBound)
        (row + span.upperBound).update(repeating: 0, count: window.upperBound - span.upperBound)
        let vectorEnd = span.lowerBound + (span.count / 8) * 8
        func load(_ p: UnsafePointer<Float>, _ j: Int) -> SIMD8<Float> { UnsafeRawPointer(p + j).loadUnaligned(as: SIMD8<Float>.self) }
        func store(_ v: SIMD8<Float>, _ j: Int) { UnsafeMutableRawPointer(row + j).storeBytes(of: v, as: SIMD8<Float>.self) }
        var maxima = SIMD8<Float>(repeating: -.infinity)
        for j in stride(from: span.lowerBound, to: vectorEnd, by: 8) {
            let v = load(row, j) + load(bias, j)
            store(v, j)
            maxima.replace(with: v, where: v .> maxima)
        }
        var m = maxima.max()
        for j in vectorEnd..<span.upperBound { row[j] += bias[j]; m = max(m, row[j]) }
        var sums = SIMD8<Float>(repeating: 0)
        for j in stride(from: span.lowerBound, to: vectorEnd, by: 8) {
            let e = fastExp(load(row, j) - m)
            store(e, j)
            sums += e
        }
        var sum = sums.sum()
        for j in vectorEnd..<span.upperBound { row[j] = fastExp(row[j] - m); sum += row[j] }
        let inv = 1 / sum
        for j in span { row[j] *= inv }
    }
}
