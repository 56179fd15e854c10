import Kernels

/// A trainable tensor, its gradient, and the optimiser group it belongs to.
public final class Parameter {
    /// The Hugging Face checkpoint name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    public private(set) var value: Tensor
    public let grad: Tensor
    /// Optimiser group (each group has its own learning rate; see `Training.AdamW`).
    public var group: String
    /// Matrices take weight decay; norms' gains and biases do not.
    public var decays: Bool { value.shape.count >= 2 }

    public init(name: String, value: Tensor, group: String = "decoder") {
        self.name = name
        self.value = value
        self.grad = Tensor(shape: value.shape)
        self.group = group
    }

    public var shape: [Int] { value.shape }

    /// Makes this parameter use `other`'s weights (and group), keeping its own gradient: a
    /// replica's passes then read the same weights and accumulate gradients apart.
    public func share(_ other: Parameter) {
        precondition(other.shape == shape, "\(name): shapes differ")
        value = other.value
        group = other.group
    }
}
