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

/// ProxyV's guided update of the full vision tokens, one per ProxyV layer:
/// v ← RMSNorm(W₂·SiLU(W₁·[W_in·v ; up(W_ctx·p)]) + v), `up` = nearest upsampling ×r per side, so
/// each proxy guides its r×r block. W_in, W_ctx: d→w; W₁: 2w→w; W₂: w→d; no biases.
public final class GuidedUpdate {
    public let inputProj, contextProj, proj1, proj2, norm: Parameter

    init(layer: Int, hidden d: Int, width w: Int, rng: inout SeededGenerator) {
        let p = "model.vision_mlp_layers.\(layer)."
        inputProj = ParameterInit.normal.parameter(p + "input_proj.weight", [w, d], rng: &rng)
        contextProj = ParameterInit.normal.parameter(p + "context_proj.weight", [w, d], rng: &rng)
        proj1 = ParameterInit.normal.parameter(p + "proj.0.weight", [w, 2 * w], rng: &rng)
        proj2 = ParameterInit.normal.parameter(p + "proj.2.weight", [d, w], rng: &rng)
        norm = ParameterInit.ones.parameter(p + "layernorm_post.weight", [d], rng: &rng)
    }

    public var parameters: [Parameter] { [inputProj, contextProj, proj1, proj2, norm] }
    var width: Int { inputProj.shape[0] }

    public struct Tape { let full, proxies, context, joined, z1, s1, sum, rstd: Tensor; let grid, reduce: Int }

    /// `full` holds the crops' vision tokens crop by crop in raster order [crops·G², d]; `proxies`
    /// their proxies [crops·(G/r)², d], likewise.
    public func forward(full: Tensor, proxies: Tensor, grid g: Int, reduce r: Int, eps: Float) -> (Tensor, Tape) {
        let w = width, n = full.shape[0], crops = n / (g * g), pg = g / r
        let context = proxies.linear(contextProj), input = full.linear(inputProj)
        let joined = Tensor(shape: [n, 2 * w])
        for c in 0..<crops {
            let up = Tensor(shape: [g * g, w])
            Resize.nearestForward(x: context.data + c * pg * pg * w, inHeight: pg, inWidth: pg, channels: w,
                                  y: up.data, outHeight: g, outWidth: g)
            for i in 0..<g * g {
                let row = joined.data + (c * g * g + i) * 2 * w
                row.update(from: input.data + (c * g * g + i) * w, count: w)
                (row + w).update(from: up.data + i * w, count: w)
            }
        }
        let z1 = joined.linear(proj1), s1 = z1.silu()
        let sum = s1.linear(proj2) + full
        let (out, rstd) = sum.rmsNorm(norm, eps: eps)
        return (out, Tape(full: full, proxies: proxies, context: context, joined: joined, z1: z1, s1: s1, sum: sum,
                          rstd: rstd, grid: g, reduce: r))
    }

    /// Accumulates the weight gradients; returns the gradients of `full` and of `proxies`.
    public func backward(_ dy: Tensor, tape t: Tape) -> (full: Tensor, proxies: Tensor) {
        let w = width, g = t.grid, pg = g / t.reduce, n = t.full.shape[0], crops = n / (g * g)
        let dSum = dy.rmsNormBackward(norm, input: t.sum, rstd: t.rstd)
        let dJoined = dSum.linearBackward(proj2, input: t.s1).siluBackward(input: t.z1).linearBackward(proj1, input: t.joined)
        let dInput = Tensor(shape: [n, w]), dContext = Tensor(shape: t.context.shape)
        for c in 0..<crops {
            let dUp = Tensor(shape: [g * g, w])
            for i in 0..<g * g {
                let row = dJoined.data + (c * g * g + i) * 2 * w
                (dInput.data + (c * g * g + i) * w).update(from: row, count: w)
                (dUp.data + i * w).update(from: row + w, count: w)
            }
            Resize.nearestBackward(dy: dUp.data, outHeight: g, outWidth: g, channels: w,
                                   dx: dContext.data + c * pg * pg * w, inHeight: pg, inWidth: pg)
        }
        let dFull = dInput.linearBackward(inputProj, input: t.full, into: dSum)
        let dProxies = dContext.linearBackward(contextProj, input: t.proxies)
        return (dFull, dProxies)
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

/// The weights a compiled variant adds to the decoder, by layer.
public final class VariantModules {
    public let lightMLPs: [Int: LightMLP]
    public let guidedUpdates: [Int: GuidedUpdate]

    public init(graph: LayerGraph, hidden: Int, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        var light: [Int: LightMLP] = [:], guided: [Int: GuidedUpdate] = [:]
        for (l, node) in graph.nodes.enumerated() {
            for module in node.modules {
                switch module {
                case let .visionMLP(w): light[l] = LightMLP(layer: l, hidden: hidden, width: w, rng: &rng)
                case let .guidedUpdate(w): guided[l] = GuidedUpdate(layer: l, hidden: hidden, width: w, rng: &rng)
                case .createProxies, .dropProxies, .pruneVision: break
                }
            }
        }
        lightMLPs = light
        guidedUpdates = guided
    }

    public var parameters: [Parameter] {
        lightMLPs.sorted { $0.key < $1.key }.flatMap(\.value.parameters)
            + guidedUpdates.sorted { $0.key < $1.key }.flatMap(\.value.parameters)
    }
}
