import Kernels
import LayerGraph

/// Vision tokens merged before the decoder: each row that stays becomes the mean of its members
/// (itself among them), and the other vision rows leave. VisionZip and downsampling decide the
/// groups; the forward and backward are shared.
struct VisionMerge {
    /// The rows that stay, in memory order, and for each the input rows averaged into it.
    let keptRows: [Int]
    let members: [[Int]]
    let inputCount: Int

    /// Groups by kept row (rows of other tokens stay alone).
    private init(packing: Packing, groups: [Int: [Int]]) {
        let tokens = packing.tokens
        keptRows = tokens.indices.filter { tokens[$0].kind != .vision || groups[$0] != nil }
        members = keptRows.map { groups[$0] ?? [$0] }
        inputCount = packing.count
    }

    /// Downsampling, crop by crop: each R×R block of the G×G grid (all of a crop's tokens) becomes
    /// one token in the place of its top-left one.
    init(pooling packing: Packing, reduce r: Int) {
        var groups: [Int: [Int]] = [:]
        for (s, layout) in packing.layouts.enumerated() {
            let g = layout.grid
            for crop in 0..<layout.crops {
                let rows = layout.visionRows(crop: crop).map { $0 + packing.offsets[s] }
                precondition(rows.count == g * g, "downsampling pools a crop's full grid")
                for bi in 0..<g / r {
                    for bj in 0..<g / r {
                        groups[rows[bi * r * g + bj * r]] = (0..<r).flatMap { a in (0..<r).map { b in rows[(bi * r + a) * g + bj * r + b] } }
                    }
                }
            }
        }
        self.init(packing: packing, groups: groups)
    }

    /// VisionZip, crop by crop: the `dominant` tokens with the highest encoder saliency stay as
    /// they are; of the rest, `contextual` tokens sampled at even intervals become merge targets,
    /// every other token joins the target it is most similar to (cosine of hidden states), and
    /// each target becomes the mean of its members. `saliency` per sequence.
    init(zipping packing: Packing, x: Tensor, saliency: [[LayoutToken: Float]], dominant: Int, contextual: Int) {
        let d = x.shape[1]
        var groups: [Int: [Int]] = [:]
        for (s, layout) in packing.layouts.enumerated() {
            let tokens = layout.tokens, offset = packing.offsets[s]
            for crop in 0..<layout.crops {
                let rows = layout.visionRows(crop: crop)
                let ranked = rows.sorted { a, b in
                    let (sa, sb) = (saliency[s][tokens[a]] ?? 0, saliency[s][tokens[b]] ?? 0)
                    return sa != sb ? sa > sb : tokens[a].index < tokens[b].index
                }.map { $0 + offset }
                for r in ranked.prefix(dominant) { groups[r] = [r] }
                let rest = ranked.dropFirst(dominant).sorted { tokens[$0 - offset].index < tokens[$1 - offset].index }
                guard contextual > 0, !rest.isEmpty else { continue }
                let targets = (0..<min(contextual, rest.count)).map { rest[$0 * rest.count / min(contextual, rest.count)] }
                for t in targets { groups[t] = [t] }
                func unit(_ r: Int) -> [Float] {
                    let v = Array(UnsafeBufferPointer(start: x.data + r * d, count: d))
                    let norm = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
                    return v.map { $0 / norm }
                }
                let targetUnits = targets.map(unit)
                for r in rest where groups[r] == nil {
                    let u = unit(r)
                    let similarity = targetUnits.map { zip($0, u).reduce(0) { $0 + $1.0 * $1.1 } }
                    groups[targets[similarity.indices.max { similarity[$0] < similarity[$1] }!]]!.append(r)
                }
            }
        }
        self.init(packing: packing, groups: groups)
    }

    /// The kept rows, each the mean of its members.
    func forward(_ x: Tensor) -> Tensor {
        let d = x.shape[1], out = Tensor(shape: [keptRows.count, d])
        for (i, group) in members.enumerated() {
            let dst = out.data + i * d, scale = 1 / Float(group.count)
            for m in group { for j in 0..<d { dst[j] += x.data[m * d + j] * scale } }
        }
        return out
    }

    /// Each member receives its share of its kept row's gradient.
    func backward(_ dOut: Tensor) -> Tensor {
        let d = dOut.shape[1], dx = Tensor(shape: [inputCount, d])
        for (i, group) in members.enumerated() {
            let src = dOut.data + i * d, scale = 1 / Float(group.count)
            for m in group { for j in 0..<d { dx.data[m * d + j] += src[j] * scale } }
        }
        return dx
    }
}
