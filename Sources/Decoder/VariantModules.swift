import Foundation
import Kernels
import LayerGraph

/// skip-vattn-ffn's light MLP on vision tokens: v ← v + W₃·SiLU(W₂·SiLU(W₁·RMSNorm(v))),
/// d→w→w→d without biases (3·d·w + w² weights and a norm gain).
public final class LightMLP {
    public let norm, fc1, fc2, fc3: Parameter

    init(layer: Int, hidden d: Int, width w: Int, rng: inout SeededGenerator) {
        let p = "model.light_mlp_layers.\(layer)."
        norm = ParameterInit.ones.parameter(p + "norm.weight", [d], rng: &rng)
        fc1 = ParameterInit.normal.parameter(p + "fc1.weight", [w, d], rng: &rng)
        fc2 = ParameterInit.normal.parameter(p + "fc2.weight", [w, w], rng: &rng)
        fc3 = ParameterInit.normal.parameter(p + "fc3.weight", [d, w], rng: &rng)
    }

    public var parameters: [Parameter] { [norm, fc1, fc2, fc3] }

    /// What the forward keeps for the backward.
    public struct Tape { let x, rstd, normed, z1, s1, z2, s2: Tensor }

    public func forward(_ x: Tensor, eps: Float) -> (Tensor, Tape) {
        let (normed, rstd) = x.rmsNorm(norm, eps: eps)
        let z1 = normed.linear(fc1), s1 = z1.silu()
        let z2 = s1.linear(fc2), s2 = z2.silu()
        return (x + s2.linear(fc3), Tape(x: x, rstd: rstd, normed: normed, z1: z1, s1: s1, z2: z2, s2: s2))
    }

    /// Accumulates the weight gradients; returns dx.
    public func backward(_ dy: Tensor, tape t: Tape) -> Tensor {
        let ds2 = dy.linearBackward(fc3, input: t.s2)
        let ds1 = ds2.siluBackward(input: t.z2).linearBackward(fc2, input: t.s1)
        let dNormed = ds1.siluBackward(input: t.z1).linearBackward(fc1, input: t.normed)
        return dNormed.rmsNormBackward(norm, input: t.x, rstd: t.rstd, into: dy.copy())
    }
}

/// How the proxies' context reaches each vision token of its crop.
enum ProxyExpansion {
    /// Nearest upsampling ×r per side: each spatial proxy guides its r×r block.
    case nearest(reduce: Int, grid: Int)
    /// Per crop an [m, n] matrix of weights over the crop's n learned proxies.
    case splat(Tensor)
}

/// ProxyV's guided update of the full vision tokens, one per ProxyV layer:
/// v ← RMSNorm(W₂·SiLU(W₁·[W_in·v ; expand(W_ctx·p)]) + v), where `expand` gives each vision
/// token its proxies' context (`ProxyExpansion`). W_in, W_ctx: d→w; W₁: 2w→w; W₂: w→d; no biases.
/// Named as the official code names them: `model.vision_mlp_layers.{j}`, j counting the ProxyV
/// layers from the first.
public final class GuidedUpdate {
    public let inputProj, contextProj, proj1, proj2, norm: Parameter

    init(index j: Int, hidden d: Int, width w: Int, rng: inout SeededGenerator) {
        let p = "model.vision_mlp_layers.\(j)."
        inputProj = ParameterInit.normal.parameter(p + "input_proj.weight", [w, d], rng: &rng)
        contextProj = ParameterInit.normal.parameter(p + "context_proj.weight", [w, d], rng: &rng)
        proj1 = ParameterInit.normal.parameter(p + "proj.0.weight", [w, 2 * w], rng: &rng)
        proj2 = ParameterInit.normal.parameter(p + "proj.2.weight", [d, w], rng: &rng)
        norm = ParameterInit.ones.parameter(p + "layernorm_post.weight", [d], rng: &rng)
    }

    public var parameters: [Parameter] { [inputProj, contextProj, proj1, proj2, norm] }
    var width: Int { inputProj.shape[0] }

    struct Tape { let full, proxies, context, joined, z1, s1, sum, rstd: Tensor; let tokensPerCrop: Int; let expansion: ProxyExpansion }

    /// `full` holds the crops' vision tokens crop by crop [crops·m, d] (in raster order for
    /// nearest expansion); `proxies` their proxies, crop by crop.
    func forward(full: Tensor, proxies: Tensor, tokensPerCrop m: Int, expansion: ProxyExpansion, eps: Float) -> (Tensor, Tape) {
        let w = width, n = full.shape[0], crops = n / m, perCrop = proxies.shape[0] / crops
        let context = proxies.linear(contextProj), input = full.linear(inputProj)
        let joined = Tensor(shape: [n, 2 * w])
        for c in 0..<crops {
            let up = Tensor(shape: [m, w]), crop = context.data + c * perCrop * w
            switch expansion {
            case let .nearest(r, g):
                Resize.nearestForward(x: crop, inHeight: g / r, inWidth: g / r, channels: w, y: up.data, outHeight: g, outWidth: g)
            case let .splat(weights):
                BLAS.gemm(m: m, n: w, k: perCrop, a: weights.data + c * m * perCrop, lda: perCrop, b: crop, ldb: w,
                          c: up.data, ldc: w)
            }
            for i in 0..<m {
                let row = joined.data + (c * m + i) * 2 * w
                row.update(from: input.data + (c * m + i) * w, count: w)
                (row + w).update(from: up.data + i * w, count: w)
            }
        }
        let z1 = joined.linear(proj1), s1 = z1.silu()
        let sum = s1.linear(proj2) + full
        let (out, rstd) = sum.rmsNorm(norm, eps: eps)
        return (out, Tape(full: full, proxies: proxies, context: context, joined: joined, z1: z1, s1: s1, sum: sum,
                          rstd: rstd, tokensPerCrop: m, expansion: expansion))
    }

    /// Accumulates the weight gradients (and, for splatting, the splat weights' gradient into
    /// `dSplat`); returns the gradients of `full` and of `proxies`.
    func backward(_ dy: Tensor, tape t: Tape, dSplat: Tensor?) -> (full: Tensor, proxies: Tensor) {
        let w = width, m = t.tokensPerCrop, n = t.full.shape[0], crops = n / m, perCrop = t.proxies.shape[0] / crops
        let dSum = dy.rmsNormBackward(norm, input: t.sum, rstd: t.rstd)
        let dJoined = dSum.linearBackward(proj2, input: t.s1).siluBackward(input: t.z1).linearBackward(proj1, input: t.joined)
        let dInput = Tensor(shape: [n, w]), dContext = Tensor(shape: t.context.shape)
        for c in 0..<crops {
            let dUp = Tensor(shape: [m, w])
            for i in 0..<m {
                let row = dJoined.data + (c * m + i) * 2 * w
                (dInput.data + (c * m + i) * w).update(from: row, count: w)
                (dUp.data + i * w).update(from: row + w, count: w)
            }
            let dCrop = dContext.data + c * perCrop * w
            switch t.expansion {
            case let .nearest(r, g):
                Resize.nearestBackward(dy: dUp.data, outHeight: g, outWidth: g, channels: w, dx: dCrop, inHeight: g / r, inWidth: g / r)
            case let .splat(weights):
                let s = weights.data + c * m * perCrop
                BLAS.gemm(transA: true, m: perCrop, n: w, k: m, a: s, lda: perCrop, b: dUp.data, ldb: w, beta: 1, c: dCrop, ldc: w)
                BLAS.gemm(transB: true, m: m, n: perCrop, k: w, a: dUp.data, lda: w, b: t.context.data + c * perCrop * w, ldb: w,
                          beta: 1, c: dSplat!.data + c * m * perCrop, ldc: perCrop)
            }
        }
        let dFull = dInput.linearBackward(inputProj, input: t.full, into: dSum)
        let dProxies = dContext.linearBackward(contextProj, input: t.proxies)
        return (dFull, dProxies)
    }
}

/// Non-spatial ProxyV's proxies: per crop, n learned queries P attend over the crop's vision
/// tokens with keys K = W_k·v (d→h): A = softmax_keys(P·Kᵀ/√h), proxies = A·v. The splat weights,
/// which give each vision token its proxies' context in every ProxyV layer, are the softmax over
/// proxies of the same logits transposed.
public final class ProxyInitializer {
    public let key, queries: Parameter

    init(hidden d: Int, keyWidth h: Int, perCrop n: Int, rng: inout SeededGenerator) {
        key = ParameterInit.normal.parameter("model.proxyv_initializer.Wk.weight", [h, d], rng: &rng)
        queries = Parameter(name: "model.proxyv_initializer.proxyv_tokens",
                            value: Tensor(shape: [n, h], std: 1 / (2 * Float(h).squareRoot()), rng: &rng))
    }

    public var parameters: [Parameter] { [key, queries] }

    struct Tape { let full, keys, attention, splat: Tensor; let tokensPerCrop: Int }

    /// `full` holds the crops' vision tokens crop by crop [crops·m, d]. Returns the proxies
    /// [crops·n, d], crop by crop, and the splat weights [crops, m, n].
    func forward(full: Tensor, tokensPerCrop m: Int) -> (proxies: Tensor, splat: Tensor, tape: Tape) {
        let d = full.shape[1], h = key.shape[0], n = queries.shape[0], crops = full.shape[0] / m, s = 1 / Float(h).squareRoot()
        let keys = full.linear(key)
        let proxies = Tensor(shape: [crops * n, d]), attention = Tensor(shape: [crops, n, m]), splat = Tensor(shape: [crops, m, n])
        let logits = Tensor(shape: [n, m]), transposed = Tensor(shape: [m, n])
        for c in 0..<crops {
            let kc = keys.data + c * m * h, vc = full.data + c * m * d
            let a = attention.data + c * n * m, st = splat.data + c * m * n
            BLAS.gemm(transB: true, m: n, n: m, k: h, alpha: s, a: queries.value.data, lda: h, b: kc, ldb: h, c: logits.data, ldc: m)
            Softmax.forward(x: logits.data, y: a, rows: n, cols: m)
            BLAS.gemm(m: n, n: d, k: m, a: a, lda: m, b: vc, ldb: d, c: proxies.data + c * n * d, ldc: d)
            BLAS.gemm(transB: true, m: m, n: n, k: h, alpha: s, a: kc, lda: h, b: queries.value.data, ldb: h, c: transposed.data, ldc: n)
            Softmax.forward(x: transposed.data, y: st, rows: m, cols: n)
        }
        return (proxies, splat, Tape(full: full, keys: keys, attention: attention, splat: splat, tokensPerCrop: m))
    }

    /// Accumulates the weight gradients; returns the gradient of `full`.
    func backward(dProxies: Tensor, dSplat: Tensor, tape t: Tape) -> Tensor {
        let m = t.tokensPerCrop, d = t.full.shape[1], h = key.shape[0], n = queries.shape[0], crops = t.full.shape[0] / m
        let s = 1 / Float(h).squareRoot()
        let dFull = Tensor(shape: t.full.shape), dKeys = Tensor(shape: t.keys.shape)
        let dA = Tensor(shape: [n, m]), dLogits = Tensor(shape: [n, m]), dTransposed = Tensor(shape: [m, n])
        for c in 0..<crops {
            let kc = t.keys.data + c * m * h, vc = t.full.data + c * m * d, dpc = dProxies.data + c * n * d
            let a = t.attention.data + c * n * m, st = t.splat.data + c * m * n
            // proxies = A·v
            BLAS.gemm(transB: true, m: n, n: m, k: d, a: dpc, lda: d, b: vc, ldb: d, c: dA.data, ldc: m)
            BLAS.gemm(transA: true, m: m, n: d, k: n, a: a, lda: m, b: dpc, ldb: d, beta: 1, c: dFull.data + c * m * d, ldc: d)
            dLogits.zero(); dTransposed.zero()
            Softmax.backward(dy: dA.data, y: a, dx: dLogits.data, rows: n, cols: m)
            Softmax.backward(dy: dSplat.data + c * m * n, y: st, dx: dTransposed.data, rows: m, cols: n)
            // logits = s·P·Kᵀ and transposed = s·K·Pᵀ
            BLAS.gemm(m: n, n: h, k: m, alpha: s, a: dLogits.data, lda: m, b: kc, ldb: h, beta: 1, c: queries.grad.data, ldc: h)
            BLAS.gemm(transA: true, m: n, n: h, k: m, alpha: s, a: dTransposed.data, lda: n, b: kc, ldb: h, beta: 1, c: queries.grad.data, ldc: h)
            let dkc = dKeys.data + c * m * h
            BLAS.gemm(transA: true, m: m, n: h, k: n, alpha: s, a: dLogits.data, lda: m, b: queries.value.data, ldb: h, beta: 1, c: dkc, ldc: h)
            BLAS.gemm(m: m, n: h, k: n, alpha: s, a: dTransposed.data, lda: n, b: queries.value.data, ldb: h, beta: 1, c: dkc, ldc: h)
        }
        return dKeys.linearBackward(key, input: t.full, into: dFull)
    }
}

/// Spatial proxies: each crop's G×G grid of vision tokens resized bilinearly to (G/r)×(G/r).
enum SpatialProxies {
    static func forward(full: Tensor, grid g: Int, reduce r: Int) -> Tensor {
        let d = full.shape[1], crops = full.shape[0] / (g * g), pg = g / r
        let proxies = Tensor(shape: [crops * pg * pg, d])
        for c in 0..<crops {
            Resize.bilinearForward(x: full.data + c * g * g * d, inHeight: g, inWidth: g, channels: d,
                                   y: proxies.data + c * pg * pg * d, outHeight: pg, outWidth: pg)
        }
        return proxies
    }

    /// Accumulates into dFull.
    static func backward(_ dProxies: Tensor, grid g: Int, reduce r: Int, into dFull: Tensor) {
        let d = dFull.shape[1], crops = dFull.shape[0] / (g * g), pg = g / r
        for c in 0..<crops {
            Resize.bilinearBackward(dy: dProxies.data + c * pg * pg * d, outHeight: pg, outWidth: pg, channels: d,
                                    dx: dFull.data + c * g * g * d, inHeight: g, inWidth: g)
        }
    }
}

/// p-MoD's router of one layer: a linear score s = w·x of each vision token's hidden state, and
/// the weight g = 1 + 0.2·tanh(s) (p-MoD's tanh-gated weight normalisation, its `tanh_0.2_1`)
/// that scales a kept token's FFN update, through which the router trains.
public final class Router {
    public let weight: Parameter
    static let scale: Float = 0.2

    init(layer: Int, hidden d: Int, rng: inout SeededGenerator) {
        weight = ParameterInit.normal.parameter("model.layers.\(layer).router.router.weight", [1, d], rng: &rng)
    }

    /// The weights of the rows of `x` [n, d]; `scores` are kept for the backward.
    func forward(_ x: Tensor) -> (gates: [Float], scores: Tensor) {
        let scores = x.linear(weight)
        return ((0..<scores.count).map { 1 + Router.scale * tanh(scores[$0]) }, scores)
    }

    /// Accumulates the router's gradient from the gates' gradient; returns the gradient of `x`.
    func backward(dGates: [Float], scores: Tensor, input x: Tensor) -> Tensor {
        let dScores = Tensor(shape: scores.shape)
        for i in 0..<scores.count {
            let t = tanh(scores[i])
            dScores[i] = dGates[i] * Router.scale * (1 - t * t)
        }
        return dScores.linearBackward(weight, input: x)
    }
}

/// The weights a compiled variant adds to the decoder, by layer.
public final class VariantModules {
    public let lightMLPs: [Int: LightMLP]
    public let guidedUpdates: [Int: GuidedUpdate]
    public let proxyInitializer: ProxyInitializer?
    /// kv-only: each scheduled layer's projector from the encoder's features.
    public let reprojectors: [Int: Projector]
    /// mod: each scheduled layer's router.
    public let routers: [Int: Router]

    public init(graph: LayerGraph, hidden: Int, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        var light: [Int: LightMLP] = [:], guided: [Int: GuidedUpdate] = [:], initializer: ProxyInitializer?
        var reprojectors: [Int: Projector] = [:], routers: [Int: Router] = [:]
        // The official code counts its guided updates from the first ProxyV layer.
        let proxyStart = graph.nodes.firstIndex { $0.modules.contains { if case .guidedUpdate = $0 { true } else { false } } } ?? 0
        for (l, node) in graph.nodes.enumerated() {
            for module in node.modules {
                switch module {
                case let .visionMLP(w): light[l] = LightMLP(layer: l, hidden: hidden, width: w, rng: &rng)
                case let .guidedUpdate(w): guided[l] = GuidedUpdate(index: l - proxyStart, hidden: hidden, width: w, rng: &rng)
                case let .createProxies(.learned(n)): initializer = ProxyInitializer(hidden: hidden, keyWidth: hidden / 4, perCrop: n, rng: &rng)
                case let .reprojectVision(f): reprojectors[l] = Projector(features: f, hidden: hidden, name: "model.layers.\(l).mm_projector", rng: &rng)
                case .route: routers[l] = Router(layer: l, hidden: hidden, rng: &rng)
                case .createProxies(.spatial), .dropProxies, .pruneVision, .zipVision, .poolVision: break
                }
            }
        }
        lightMLPs = light
        guidedUpdates = guided
        proxyInitializer = initializer
        self.reprojectors = reprojectors
        self.routers = routers
        for p in parameters { p.group = "variant" }
    }

    /// The modules' weights, in the optimiser group "variant" (trained already in stage 1).
    public var parameters: [Parameter] {
        func byLayer<M>(_ modules: [Int: M], _ parameters: (M) -> [Parameter]) -> [Parameter] {
            modules.sorted { $0.key < $1.key }.flatMap { parameters($0.value) }
        }
        return byLayer(lightMLPs, \.parameters) + byLayer(guidedUpdates, \.parameters) + (proxyInitializer?.parameters ?? [])
            + byLayer(reprojectors, \.parameters) + byLayer(routers) { [$0.weight] }
    }
}
