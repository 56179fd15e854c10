import Kernels

/// A trainable tensor, its gradient, and the optimiser group it belongs to.
public final class Parameter {
    /// The Hugging Face checkpoint name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    public let value: Tensor
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
}
