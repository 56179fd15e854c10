import Kernels

/// LLaVA's projector from vision features into the decoder's width: Linear → GELU (tanh) →
/// Linear, with biases. Names follow LLaVA checkpoints (`model.mm_projector.{0,2}`); kv-only's
/// per-layer projectors are named under their layer (`model.layers.{l}.mm_projector.{0,2}`).
public final class Projector {
    public let weight1, bias1, weight2, bias2: Parameter

    public convenience init(features: Int, hidden: Int, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        self.init(features: features, hidden: hidden, name: "model.mm_projector", rng: &rng)
        for p in parameters { p.group = "projector" }
    }

    init(features: Int, hidden: Int, name: String, rng: inout SeededGenerator) {
        weight1 = Parameter(name: name + ".0.weight", value: Tensor(shape: [hidden, features], std: 1 / Float(features).squareRoot(), rng: &rng))
        bias1 = Parameter(name: name + ".0.bias", value: Tensor(shape: [hidden]))
        weight2 = Parameter(name: name + ".2.weight", value: Tensor(shape: [hidden, hidden], std: 1 / Float(hidden).squareRoot(), rng: &rng))
        bias2 = Parameter(name: name + ".2.bias", value: Tensor(shape: [hidden]))
    }

    public var parameters: [Parameter] { [weight1, bias1, weight2, bias2] }

    public struct Tape { let x, z, a: Tensor }

    /// Vision features [tokens, features] to decoder inputs [tokens, hidden].
    public func forward(_ x: Tensor) -> (Tensor, Tape) {
        let n = x.shape[0], f = weight1.shape[1], h = weight1.shape[0]
        let z = Tensor(shape: [n, h]), a = Tensor(shape: [n, h]), y = Tensor(shape: [n, h])
        Linear.forward(x: x.data, w: weight1.value.data, bias: bias1.value.data, y: z.data, rows: n, inFeatures: f, outFeatures: h)
        GELU.forward(x: z.data, y: a.data, count: z.count)
        Linear.forward(x: a.data, w: weight2.value.data, bias: bias2.value.data, y: y.data, rows: n, inFeatures: h, outFeatures: h)
        return (y, Tape(x: x, z: z, a: a))
    }

    /// Accumulates the weight gradients; returns the gradient of the features.
    public func backward(_ dy: Tensor, tape t: Tape) -> Tensor {
        let n = t.x.shape[0], f = weight1.shape[1], h = weight1.shape[0]
        let da = Tensor(shape: [n, h]), dz = Tensor(shape: [n, h]), dx = Tensor(shape: t.x.shape)
        Linear.backward(dy: dy.data, x: t.a.data, w: weight2.value.data, dx: da.data, dw: weight2.grad.data, dbias: bias2.grad.data,
                        rows: n, inFeatures: h, outFeatures: h)
        GELU.backward(dy: da.data, x: t.z.data, dx: dz.data, count: dz.count)
        Linear.backward(dy: dz.data, x: t.x.data, w: weight1.value.data, dx: dx.data, dw: weight1.grad.data, dbias: bias1.grad.data,
                        rows: n, inFeatures: f, outFeatures: h)
        return dx
    }
}
