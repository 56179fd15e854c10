import Kernels
import XCTest

/// Forward values against independent references: hand-computed cases, PyTorch's published
/// results, and a naive Double implementation.
final class ForwardTests: XCTestCase {
    func testGemmTransposesAgainstNaiveProduct() {
        let a = randomTensor([3, 4], seed: 1), b = randomTensor([4, 5], seed: 2)
        let c = Tensor(shape: [3, 5]), ct = Tensor(shape: [5, 3])
        BLAS.gemm(m: 3, n: 5, k: 4, a: a.data, lda: 4, b: b.data, ldb: 5, c: c.data, ldc: 5)
        BLAS.gemm(transA: true, transB: true, m: 5, n: 3, k: 4, a: b.data, lda: 5, b: a.data, ldb: 4, c: ct.data, ldc: 3)
        for i in 0..<3 { for j in 0..<5 {
            let expected = (0..<4).reduce(0.0) { $0 + Double(a[i * 4 + $1]) * Double(b[$1 * 5 + j]) }
            XCTAssertEqual(Double(c[i * 5 + j]), expected, accuracy: 1e-5)
            XCTAssertEqual(Double(ct[j * 3 + i]), expected, accuracy: 1e-5)
        } }
    }

    func testActivationValues() {
        let x = Tensor(shape: [3], values: [1, -2, 0]), y = Tensor(shape: [3])
        GELU.forward(x: x.data, y: y.data, count: 3)
        XCTAssertEqual(y.array, [0.841192, -0.0454023, 0], accuracy: 1e-6)   // PyTorch gelu(approximate='tanh')
        SiLU.forward(x: x.data, y: y.data, count: 3)
        XCTAssertEqual(y.array, [0.7310586, -0.2384058, 0], accuracy: 1e-6)
    }

    func testFastExpIsWithinThreeTenMillionthsOfExp() {
        var x: Float = -87
        while x < 88 {
            XCTAssertEqual(Double(fastExp(x)) / exp(Double(x)), 1, accuracy: 3e-7, "exp(\(x))")
            x += 0.0137
        }
        XCTAssertEqual(fastExp(-88), 0, "below the normal range: 0, as softmax wants")
        XCTAssertEqual(fastExp(-.infinity), 0)
        XCTAssertEqual(fastExp(0), 1)
    }

    func testRMSNormValue() {
        let x = Tensor(shape: [1, 2], values: [3, 4]), w = Tensor(shape: [2], values: [1, 2])
        let y = Tensor(shape: [1, 2]), rstd = Tensor(shape: [1])
        RMSNorm.forward(x: x.data, weight: w.data, y: y.data, rstd: rstd.data, rows: 1, dim: 2, eps: 0)
        let rms = Float(12.5).squareRoot()
        XCTAssertEqual(y.array, [3 / rms, 8 / rms], accuracy: 1e-6)
    }

    /// Hugging Face convention: pairs (i, i + d/2), angle p·θ^(−2i/d); the score of a rotated
    /// query and key depends only on the difference of their position ids.
    func testRopeConventionAndRelativePositions() {
        let rope = Rope(headDim: 4, theta: 100)
        let x = Tensor(shape: [1, 4], values: [1, 2, 3, 4])
        rope.forward(x.data, positions: [1], heads: 1)
        let (c0, s0, c1, s1) = (cos(1.0), sin(1.0), cos(0.1), sin(0.1))
        XCTAssertEqual(x.array, [Float(1 * c0 - 3 * s0), Float(2 * c1 - 4 * s1), Float(3 * c0 + 1 * s0), Float(4 * c1 + 2 * s1)],
                       accuracy: 1e-6)

        let q = randomTensor([1, 8], seed: 3), k = randomTensor([1, 8], seed: 4)
        func score(_ pq: Int32, _ pk: Int32) -> Float {
            let a = q.copy(), b = k.copy()
            let r = Rope(headDim: 8, theta: 10000)
            r.forward(a.data, positions: [pq], heads: 1)
            r.forward(b.data, positions: [pk], heads: 1)
            return (0..<8).reduce(0) { $0 + a[$1] * b[$1] }
        }
        XCTAssertEqual(score(7, 3), score(104, 100), accuracy: 1e-4)
        XCTAssertNotEqual(score(7, 3), score(7, 4), accuracy: 1e-3)
    }

    /// Against a naive Double implementation: masked pairs get probability exactly 0, and a
    /// query with no allowed key outputs 0.
    func testAttentionAgainstNaiveReference() {
        for (nq, nk) in [(4, 6), (2 * AttentionMask.rowBlock + 3, 150)] { checkAttentionAgainstNaiveReference(nq: nq, nk: nk) }
    }

    func checkAttentionAgainstNaiveReference(nq: Int, nk: Int) {
        let layout = HeadLayout(heads: 4, kvHeads: 2, headDim: 3)
        // Some rows see nothing, others a band; blocks get different key spans.
        let mask = AttentionMask(queries: nq, keys: nk) { q, k in q % 37 != 1 && (k + q) % 3 != 0 && k <= q + 2 && k + 90 >= q }
        let q = randomTensor([nq, 12], seed: 5), k = randomTensor([nk, 6], seed: 6), v = randomTensor([nk, 6], seed: 7)
        let out = Tensor(shape: [nq, 12]), probs = Tensor(shape: [4 * nq * nk])
        Attention.forward(q: q.data, k: k.data, v: v.data, out: out.data, probs: probs.data, mask: mask, layout: layout)
        let blocked = Tensor(shape: [nq, 12])
        Attention.forward(q: q.data, k: k.data, v: v.data, out: blocked.data, probs: nil, mask: mask, layout: layout)
        XCTAssertEqual(blocked.array, out.array, "keeping or not keeping the weights gives the same output")
        for h in 0..<4 {
            let g = h / 2
            for i in 0..<nq {
                var scores = (0..<nk).map { j in
                    mask[i, j] ? (0..<3).reduce(0.0) { $0 + Double(q[i * 12 + h * 3 + $1]) * Double(k[j * 6 + g * 3 + $1]) } / 3.0.squareRoot() : -Double.infinity
                }
                let m = scores.max()!
                if m == -.infinity { scores = scores.map { _ in 0 } } else {
                    scores = scores.map { exp($0 - m) }
                    let s = scores.reduce(0, +)
                    scores = scores.map { $0 / s }
                }
                for j in 0..<nk {
                    XCTAssertEqual(Double(probs[(h * nq + i) * nk + j]), scores[j], accuracy: 1e-6)
                    if !mask[i, j] { XCTAssertEqual(probs[(h * nq + i) * nk + j], 0) }
                }
                for c in 0..<3 {
                    let expected = (0..<nk).reduce(0.0) { $0 + scores[$1] * Double(v[$1 * 6 + g * 3 + c]) }
                    XCTAssertEqual(Double(out[i * 12 + h * 3 + c]), expected, accuracy: 1e-5)
                }
            }
        }
    }

    func testComputedPairsFollowTheBlocksKeySpans() {
        XCTAssertEqual(AttentionMask(queries: 100, keys: 30) { _, _ in true }.computedPairs, 3000, "dense")
        let b = AttentionMask.rowBlock
        // Causal over 5 blocks: block i computes b rows × (i+1)·b keys.
        XCTAssertEqual(AttentionMask.causal(5 * b).computedPairs, b * b * (1 + 2 + 3 + 4 + 5))
        XCTAssertEqual(AttentionMask(queries: 3, keys: 4) { _, _ in false }.computedPairs, 0)
    }

    /// PyTorch: F.interpolate([[1,2],[3,4]], size=(4,4), mode='bilinear', align_corners=False).
    func testBilinearUpsamplingMatchesPyTorch() {
        let x = Tensor(shape: [2, 2, 1], values: [1, 2, 3, 4]), y = Tensor(shape: [4, 4, 1])
        Resize.bilinearForward(x: x.data, inHeight: 2, inWidth: 2, channels: 1, y: y.data, outHeight: 4, outWidth: 4)
        XCTAssertEqual(y.array, [1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0], accuracy: 1e-6)
    }

    /// With scale exactly 1/4 each output is the mean of the 2×2 centre of its 4×4 block.
    func testBilinearDownscaleByFourIsCentreMean() {
        let (g, c) = (8, 3)
        let x = randomTensor([g, g, c], seed: 8), y = Tensor(shape: [2, 2, c])
        Resize.bilinearForward(x: x.data, inHeight: g, inWidth: g, channels: c, y: y.data, outHeight: 2, outWidth: 2)
        for by in 0..<2 { for bx in 0..<2 { for ch in 0..<c {
            let centre = [(1, 1), (1, 2), (2, 1), (2, 2)].reduce(Float(0)) { $0 + x[((4 * by + $1.0) * g + 4 * bx + $1.1) * c + ch] } / 4
            XCTAssertEqual(y[(by * 2 + bx) * c + ch], centre, accuracy: 1e-6)
        } } }
    }

    func testNearestUpsamplingCopiesBlocks() {
        let x = Tensor(shape: [2, 2, 1], values: [1, 2, 3, 4]), y = Tensor(shape: [4, 4, 1])
        Resize.nearestForward(x: x.data, inHeight: 2, inWidth: 2, channels: 1, y: y.data, outHeight: 4, outWidth: 4)
        XCTAssertEqual(y.array, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
    }

    func testCrossEntropyOfUniformLogitsIsLogVocab() {
        let logits = Tensor(shape: [3, 8]), lse = Tensor(shape: [3])
        let (sum, count) = CrossEntropy.forward(logits: logits.data, targets: [1, -1, 7], lse: lse.data, vocab: 8)
        XCTAssertEqual(count, 2)
        XCTAssertEqual(sum / 2, log(8), accuracy: 1e-6)
    }
}

func XCTAssertEqual(_ a: [Float], _ b: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > accuracy {
        XCTFail("entry \(i): \(x) != \(y) (±\(accuracy))", file: file, line: line)
    }
}
