import Decoder
import Kernels
import XCTest

final class ProjectorTests: XCTestCase {
    /// Finite differences of Σ r·projector(x) (Double accumulation, h = 1e-2, |Δ| ≤ 2e-3 + 1e-2·|numeric|).
    func testGradientsByFiniteDifferences() {
        let projector = Projector(features: 6, hidden: 5, seed: 1)
        for p in projector.parameters where p.shape.count == 1 { for i in 0..<p.value.count { p.value[i] = 0.1 * Float(i) - 0.2 } }
        var rng = SeededGenerator(seed: 2)
        let x = Tensor(shape: [4, 6], std: 1, rng: &rng), r = Tensor(shape: [4, 5], std: 1, rng: &rng)
        func loss() -> Double {
            let (y, _) = projector.forward(x)
            return (0..<y.count).reduce(0.0) { $0 + Double(y[$1]) * Double(r[$1]) }
        }
        let (_, tape) = projector.forward(x)
        let dx = projector.backward(r, tape: tape)
        for (value, grad) in [(x, dx)] + projector.parameters.map({ ($0.value, $0.grad) }) {
            for i in 0..<value.count {
                let saved = value[i]
                value[i] = saved + 1e-2; let plus = loss()
                value[i] = saved - 1e-2; let minus = loss()
                value[i] = saved
                let numeric = (plus - minus) / 2e-2
                XCTAssertLessThanOrEqual(abs(Double(grad[i]) - numeric), 2e-3 + 1e-2 * abs(numeric))
            }
        }
        XCTAssertEqual(projector.parameters.map(\.name), ["model.mm_projector.0.weight", "model.mm_projector.0.bias",
                                                          "model.mm_projector.2.weight", "model.mm_projector.2.bias"])
    }
}
