import Kernels
import XCTest

/// Finite-difference gradient checking in the manner of ggml's test-backend-ops.
///
/// For an op y = f(x₁, …, xₙ) the scalar L = Σ rᵢ·yᵢ (r fixed and random) is accumulated in
/// Double. Its analytic gradient with respect to each input comes from the op's backward run on
/// dy = r; the numeric one is the central difference (L(x+h) − L(x−h)) / 2h, with the Float32
/// forward evaluated at x ± h. They must agree within |analytic − numeric| ≤ atol + rtol·|numeric|
/// with rtol = 1e-2 and atol = 2e-3 (h = 1e-2): the Float32 forward's rounding, divided by 2h,
/// is the dominant error, well under these bounds for correct backwards and far over them
/// for a wrong sign, factor or index.
struct GradientCheck {
    static let h: Float = 1e-2, rtol = 1e-2, atol = 2e-3

    /// Runs the forward and returns its output.
    let forward: () -> Tensor
    /// Given dy, returns the gradient of each input (same order as `inputs`), accumulated from zero.
    let backward: (Tensor) -> [Tensor]
    let inputs: [Tensor]

    func run(_ name: String, maxEntriesPerInput: Int = 64, file: StaticString = #filePath, line: UInt = #line) {
        let y = forward()
        var rng = SeededGenerator(seed: 99)
        let r = Tensor(shape: y.shape, std: 1, rng: &rng)
        func loss() -> Double {
            let out = forward()
            var s = 0.0
            for i in 0..<out.count { s += Double(r[i]) * Double(out[i]) }
            return s
        }
        let analytic = backward(r)
        XCTAssertEqual(analytic.count, inputs.count, "\(name): one gradient per input", file: file, line: line)
        for (n, x) in inputs.enumerated() {
            // Check every entry of small inputs, an even sample of large ones.
            let stride = max(1, x.count / maxEntriesPerInput)
            for i in Swift.stride(from: 0, to: x.count, by: stride) {
                let saved = x[i]
                x[i] = saved + GradientCheck.h; let plus = loss()
                x[i] = saved - GradientCheck.h; let minus = loss()
                x[i] = saved
                let numeric = (plus - minus) / Double(2 * GradientCheck.h)
                let a = Double(analytic[n][i])
                let excess = abs(a - numeric) - (GradientCheck.atol + GradientCheck.rtol * abs(numeric))
                if excess > 0 {
                    XCTFail("\(name): input \(n) entry \(i): analytic \(a), numeric \(numeric)", file: file, line: line)
                    return
                }
            }
        }
    }
}

func randomTensor(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    return Tensor(shape: shape, std: std, rng: &rng)
}
