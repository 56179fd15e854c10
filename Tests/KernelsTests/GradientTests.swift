import Kernels
import XCTest

/// A finite-difference gradient test for every kernel's backward (tolerances in GradientCheck).
final class GradientTests: XCTestCase {
    func testLinear() {
        let (rows, i, o) = (5, 7, 6)
        let x = randomTensor([rows, i], seed: 1), w = randomTensor([o, i], seed: 2), b = randomTensor([o], seed: 3)
        GradientCheck(forward: {
            let y = Tensor(shape: [rows, o])
            Linear.forward(x: x.data, w: w.data, bias: b.data, y: y.data, rows: rows, inFeatures: i, outFeatures: o)
            return y
        }, backward: { dy in
            let dx = Tensor(shape: x.shape), dw = Tensor(shape: w.shape), db = Tensor(shape: b.shape)
            Linear.backward(dy: dy.data, x: x.data, w: w.data, dx: dx.data, dw: dw.data, dbias: db.data,
                            rows: rows, inFeatures: i, outFeatures: o)
            return [dx, dw, db]
        }, inputs: [x, w, b]).run("linear")
    }

    func testEmbedding() {
        let table = randomTensor([9, 4], seed: 4), ids: [Int32] = [3, 0, 3, 8, 1]
        GradientCheck(forward: {
            let y = Tensor(shape: [ids.count, 4])
            Embedding.forward(ids: ids, table: table.data, out: y.data, dim: 4)
            return y
        }, backward: { dy in
            let dt = Tensor(shape: table.shape)
            Embedding.backward(ids: ids, dOut: dy.data, dTable: dt.data, dim: 4)
            return [dt]
        }, inputs: [table]).run("embedding")
    }

    func testRMSNorm() {
        let x = randomTensor([4, 8], seed: 5), w = randomTensor([8], seed: 6)
        let rstd = Tensor(shape: [4])
        GradientCheck(forward: {
            let y = Tensor(shape: x.shape)
            RMSNorm.forward(x: x.data, weight: w.data, y: y.data, rstd: rstd.data, rows: 4, dim: 8, eps: 1e-5)
            return y
        }, backward: { dy in
            let dx = Tensor(shape: x.shape), dw = Tensor(shape: w.shape)
            RMSNorm.backward(dy: dy.data, x: x.data, weight: w.data, rstd: rstd.data, dx: dx.data, dWeight: dw.data, rows: 4, dim: 8)
            return [dx, dw]
        }, inputs: [x, w]).run("rmsnorm")
    }

    func testRope() {
        let rope = Rope(headDim: 8, theta: 10000), positions: [Int32] = [0, 5, 2, 17]
        let x = randomTensor([4, 2 * 8], seed: 7)
        GradientCheck(forward: {
            let y = x.copy()
            rope.forward(y.data, positions: positions, heads: 2)
            return y
        }, backward: { dy in
            let dx = dy.copy()
            rope.backward(dx.data, positions: positions, heads: 2)
            return [dx]
        }, inputs: [x]).run("rope")
    }

    func testActivations() {
        let x = randomTensor([3, 5], seed: 8, std: 2)
        for (name, f, df) in [("silu", SiLU.forward, SiLU.backward), ("gelu", GELU.forward, GELU.backward)] {
            GradientCheck(forward: {
                let y = Tensor(shape: x.shape); f(x.data, y.data, x.count); return y
            }, backward: { dy in
                let dx = Tensor(shape: x.shape); df(dy.data, x.data, dx.data, x.count); return [dx]
            }, inputs: [x]).run(name)
        }
    }

    func testSoftmax() {
        let x = randomTensor([3, 6], seed: 9, std: 2)
        var y = Tensor(shape: x.shape)
        GradientCheck(forward: {
            y = Tensor(shape: x.shape); Softmax.forward(x: x.data, y: y.data, rows: 3, cols: 6); return y
        }, backward: { dy in
            let dx = Tensor(shape: x.shape); Softmax.backward(dy: dy.data, y: y.data, dx: dx.data, rows: 3, cols: 6); return [dx]
        }, inputs: [x]).run("softmax")
    }

    func testSwiGLU() {
        let (rows, d, f) = (4, 6, 10)
        let x = randomTensor([rows, d], seed: 10), g = randomTensor([f, d], seed: 11, std: 0.5)
        let u = randomTensor([f, d], seed: 12, std: 0.5), dn = randomTensor([d, f], seed: 13, std: 0.5)
        let saved = (Tensor(shape: [rows, f]), Tensor(shape: [rows, f]), Tensor(shape: [rows, f]))
        let s = SwiGLU.Saved(gate: saved.0.data, up: saved.1.data, hidden: saved.2.data)
        let w = SwiGLU.Weights(gate: g.data, up: u.data, down: dn.data)
        GradientCheck(forward: {
            let y = Tensor(shape: [rows, d])
            SwiGLU.forward(x: x.data, weights: w, y: y.data, saved: s, rows: rows, dim: d, ffn: f)
            return y
        }, backward: { dy in
            let dx = Tensor(shape: x.shape), dg = Tensor(shape: g.shape), du = Tensor(shape: u.shape), dd = Tensor(shape: dn.shape)
            let scratch = (Tensor(shape: [rows, f]), Tensor(shape: [rows, f]))
            SwiGLU.backward(dy: dy.data, x: x.data, weights: w, saved: s, dx: dx.data, dGate: dg.data, dUp: du.data,
                            dDown: dd.data, scratch: (scratch.0.data, scratch.1.data), rows: rows, dim: d, ffn: f)
            return [dx, dg, du, dd]
        }, inputs: [x, g, u, dn]).run("swiglu")
    }

    /// Grouped-query attention with an arbitrary mask, different query and key counts, a query
    /// row that may attend to nothing, and (second case) several blocks of query rows.
    func testAttention() {
        let layout = HeadLayout(heads: 4, kvHeads: 2, headDim: 3)
        for (nq, nk) in [(5, 7), (AttentionMask.rowBlock + 9, AttentionMask.rowBlock + 20)] {
            var rng = SeededGenerator(seed: 14)
            let mask = AttentionMask(queries: nq, keys: nk) { q, k in q != 2 && k <= q + 10 && rng.nextUniform() < 0.6 }
            let q = randomTensor([nq, layout.queryWidth], seed: 15), k = randomTensor([nk, layout.kvWidth], seed: 16)
            let v = randomTensor([nk, layout.kvWidth], seed: 17)
            let probs = Tensor(shape: [layout.heads * nq * nk])
            GradientCheck(forward: {
                let out = Tensor(shape: [nq, layout.queryWidth])
                Attention.forward(q: q.data, k: k.data, v: v.data, out: out.data, probs: probs.data, mask: mask, layout: layout)
                return out
            }, backward: { dOut in
                let dq = Tensor(shape: q.shape), dk = Tensor(shape: k.shape), dv = Tensor(shape: v.shape)
                Attention.backward(dOut: dOut.data, q: q.data, k: k.data, v: v.data, probs: probs.data,
                                   dq: dq.data, dk: dk.data, dv: dv.data, mask: mask, layout: layout)
                return [dq, dk, dv]
            }, inputs: [q, k, v]).run("attention \(nq)x\(nk)")
        }
    }

    func testBilinearResize() {
        let x = randomTensor([5, 6, 2], seed: 18)
        for (oh, ow) in [(3, 4), (8, 9)] {
            GradientCheck(forward: {
                let y = Tensor(shape: [oh, ow, 2])
                Resize.bilinearForward(x: x.data, inHeight: 5, inWidth: 6, channels: 2, y: y.data, outHeight: oh, outWidth: ow)
                return y
            }, backward: { dy in
                let dx = Tensor(shape: x.shape)
                Resize.bilinearBackward(dy: dy.data, outHeight: oh, outWidth: ow, channels: 2, dx: dx.data, inHeight: 5, inWidth: 6)
                return [dx]
            }, inputs: [x]).run("bilinear \(oh)x\(ow)")
        }
    }

    func testNearestUpsampling() {
        let x = randomTensor([2, 3, 2], seed: 19)
        GradientCheck(forward: {
            let y = Tensor(shape: [6, 9, 2])
            Resize.nearestForward(x: x.data, inHeight: 2, inWidth: 3, channels: 2, y: y.data, outHeight: 6, outWidth: 9)
            return y
        }, backward: { dy in
            let dx = Tensor(shape: x.shape)
            Resize.nearestBackward(dy: dy.data, outHeight: 6, outWidth: 9, channels: 2, dx: dx.data, inHeight: 2, inWidth: 3)
            return [dx]
        }, inputs: [x]).run("nearest")
    }

    func testCrossEntropyOverMaskedPositions() {
        let logits = randomTensor([5, 7], seed: 20, std: 2), targets: [Int32] = [3, -1, 0, 6, -1]
        let lse = Tensor(shape: [5])
        GradientCheck(forward: {
            let (sum, count) = CrossEntropy.forward(logits: logits.data, targets: targets, lse: lse.data, vocab: 7)
            return Tensor(shape: [1], values: [Float(sum / Double(count))])
        }, backward: { dLoss in
            let d = Tensor(shape: logits.shape)
            CrossEntropy.backward(logits: logits.data, targets: targets, lse: lse.data, dLogits: d.data, vocab: 7, scale: dLoss[0] / 3)
            return [d]
        }, inputs: [logits]).run("cross-entropy")
    }
}
