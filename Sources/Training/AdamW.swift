import Foundation
import Decoder
import Kernels

/// AdamW with decoupled weight decay (Loshchilov & Hutter): the decay is applied to the weights
/// directly, scaled by the learning rate, not added to the gradient. Parameters are grouped by
/// `Parameter.group`; each group has its own learning rate.
public final class AdamW {
    public struct Settings: Codable, Equatable, Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.95
        public var epsilon: Float = 1e-8
        public var weightDecay: Float = 0.1
        public init(beta1: Float = 0.9, beta2: Float = 0.95, epsilon: Float = 1e-8, weightDecay: Float = 0.1) {
            self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
        }
    }

    public let settings: Settings
    public private(set) var step = 0
    private let parameters: [Parameter]
    private let firstMoments: [Tensor], secondMoments: [Tensor]

    public init(parameters: [Parameter], settings: Settings = .init()) {
        self.parameters = parameters
        self.settings = settings
        firstMoments = parameters.map { Tensor(shape: $0.shape) }
        secondMoments = parameters.map { Tensor(shape: $0.shape) }
    }

    /// The optimiser's state as named tensors (moments "adam.m.<name>", "adam.v.<name>") and its step.
    public var state: (tensors: [(String, Tensor)], step: Int) {
        (zip(parameters, zip(firstMoments, secondMoments)).flatMap { p, mv in [("adam.m." + p.name, mv.0), ("adam.v." + p.name, mv.1)] }, step)
    }

    /// Restores a state written by `state`; every moment must be present with its shape.
    public func restore(tensors: [String: Tensor], step: Int) throws {
        for (i, p) in parameters.enumerated() {
            for (prefix, target) in [("adam.m.", firstMoments[i]), ("adam.v.", secondMoments[i])] {
                guard let t = tensors[prefix + p.name], t.shape == p.shape else {
                    throw AdamWStateError(problem: "no optimiser moment \(prefix + p.name) of shape \(p.shape)")
                }
                target.fill(from: t)
            }
        }
        self.step = step
    }

    /// One update; `learningRate(group)` gives each group's rate for this step (0 freezes a group).
    public func update(learningRate: (String) -> Float) {
        step += 1
        let s = settings
        let correction1 = 1 - pow(s.beta1, Float(step)), correction2 = 1 - pow(s.beta2, Float(step))
        let rates = parameters.map { learningRate($0.group) }
        Parallel.forEach(parameters.count) { i, _ in
            let p = parameters[i], lr = rates[i]
            guard lr != 0 else { return }
            let w = p.value.data, g = p.grad.data, m = firstMoments[i].data, v = secondMoments[i].data
            let decay = p.decays ? 1 - lr * s.weightDecay : 1
            for j in 0..<p.value.count {
                m[j] = s.beta1 * m[j] + (1 - s.beta1) * g[j]
                v[j] = s.beta2 * v[j] + (1 - s.beta2) * g[j] * g[j]
                let mHat = m[j] / correction1, vHat = v[j] / correction2
                w[j] = w[j] * decay - lr * mHat / (vHat.squareRoot() + s.epsilon)
            }
        }
    }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
@discardableResult
public func clipGradients(_ parameters: [Parameter], maxNorm: Float) -> Float {
    var squares = [Double](repeating: 0, count: parameters.count)
    squares.withUnsafeMutableBufferPointer { squares in
        Parallel.forEach(parameters.count) { i, _ in
            let g = parameters[i].grad.data
            var s: Float = 0
            for j in 0..<parameters[i].grad.count { s += g[j] * g[j] }
            squares[i] = Double(s)
        }
    }
    let norm = Float(squares.reduce(0, +).squareRoot())   // summed in a fixed order: deterministic
    if maxNorm > 0, norm > maxNorm {
        let scale = maxNorm / (norm + 1e-6)
        Parallel.forEach(parameters.count) { i, _ in
            for j in 0..<parameters[i].grad.count { parameters[i].grad.data[j] *= scale }
        }
    }
    return norm
}

/// Linear warm-up from 0 to the peak over `warmupSteps`, then cosine decay to `minFactor`·peak at `totalSteps`.
public struct CosineSchedule: Codable, Equatable, Sendable {
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minFactor: Float = 0

    public init(warmupSteps: Int, totalSteps: Int, minFactor: Float = 0) {
        self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.minFactor = minFactor
    }

    /// The fraction of the peak rate at `step` (0-based).
    public func factor(at step: Int) -> Float {
        if step < warmupSteps { return Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Float(step - warmupSteps) / Float(span))
        return minFactor + (1 - minFactor) * 0.5 * (1 + cos(Float.pi * progress))
    }
}

/// An optimiser state that does not fit the parameters.
public struct AdamWStateError: InputError {
    public let problem: String
    public var description: String { problem }
}
