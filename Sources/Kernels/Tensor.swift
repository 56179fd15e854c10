/// A dense Float32 tensor in row-major order that owns its storage.
///
/// Reference semantics on purpose: kernels write into preallocated tensors (llm.c style), so
/// activations and gradients live in buffers that are allocated once and reused.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor.
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        data = .allocate(capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// Normally distributed entries with the given standard deviation.
    public convenience init(shape: [Int], std: Float, rng: inout SeededGenerator) {
        self.init(shape: shape)
        for i in 0..<count { data[i] = std * rng.nextNormal() }
    }

    deinit { data.deallocate() }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }

    public func zero() { data.update(repeating: 0, count: count) }

    public func copy() -> Tensor {
        let t = Tensor(shape: shape)
        t.data.update(from: data, count: count)
        return t
    }

    public func fill(from other: Tensor) {
        precondition(other.count == count)
        data.update(from: other.data, count: count)
    }
}
