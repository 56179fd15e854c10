/// The Llama FFN: y = W_down · (silu(W_gate·x) ⊙ W_up·x).
public enum SwiGLU {
    public struct Weights {
        public let gate: FloatPtr, up: FloatPtr, down: FloatPtr   // [ffn, dim], [ffn, dim], [dim, ffn]
        public init(gate: FloatPtr, up: FloatPtr, down: FloatPtr) { self.gate = gate; self.up = up; self.down = down }
    }

    /// What the forward keeps for the backward: three [rows, ffn] buffers.
    public struct Saved {
        public let gate: FloatPtr, up: FloatPtr, hidden: FloatPtr
        public init(gate: FloatPtr, up: FloatPtr, hidden: FloatPtr) { self.gate = gate; self.up = up; self.hidden = hidden }
    }

    public static func forward(x: FloatPtr, weights w: Weights, y: FloatPtr, saved s: Saved,
                               rows: Int, dim: Int, ffn: Int) {
        Linear.forward(x: x, w: w.gate, y: s.gate, rows: rows, inFeatures: dim, outFeatures: ffn)
        Linear.forward(x: x, w: w.up, y: s.up, rows: rows, inFeatures: dim, outFeatures: ffn)
        for i in 0..<rows * ffn { s.hidden[i] = SiLU.value(s.gate[i]) * s.up[i] }
        Linear.forward(x: s.hidden, w: w.down, y: y, rows: rows, inFeatures: ffn, outFeatures: dim)
    }

    /// Accumulates dx and the weight gradients; `scratch` holds two [rows, ffn] buffers.
    public static func backward(dy: FloatPtr, x: FloatPtr, weights w: Weights, saved s: Saved,
                                dx: FloatPtr, dGate: FloatPtr?, dUp: FloatPtr?, dDown: FloatPtr?,
                                scratch: (FloatPtr, FloatPtr), rows: Int, dim: Int, ffn: Int) {
        let (dHidden, dUpOut) = scratch
        dHidden.update(repeating: 0, count: rows * ffn)
        Linear.backward(dy: dy, x: s.hidden, w: w.down, dx: dHidden, dw: dDown,
                        rows: rows, inFeatures: ffn, outFeatures: dim)
        // dHidden becomes dGateOut in place; dUpOut is written alongside.
        for i in 0..<rows * ffn {
            let g = s.gate[i], dh = dHidden[i]
            dUpOut[i] = dh * SiLU.value(g)
            dHidden[i] = dh * s.up[i] * SiLU.derivative(g)
        }
        Linear.backward(dy: dHidden, x: x, w: w.gate, dx: dx, dw: dGate, rows: rows, inFeatures: dim, outFeatures: ffn)
        Linear.backward(dy: dUpOut, x: x, w: w.up, dx: dx, dw: dUp, rows: rows, inFeatures: dim, outFeatures: ffn)
    }
}
