import Kernels
import LayerGraph

/// The properties every variant must have, each checked by a test over the cases that carry it.
public enum VariantProperty: String, CaseIterable, Sendable {
    /// Finite differences of the whole loss: decoder weights, the variant's modules, inputs.
    case gradients
    /// Rows permuted, or the sequence packed with others: every token's logits unchanged.
    case packing
    /// Cached decoding equals recomputing the prefix, alone and for a batch of prompts.
    case decoding
    /// The analytic FLOPs equal the products that ran, in prefill and decoding.
    case flops
}

/// Every variant case and the properties tested on it (x) or not (-), kept as data as ggml's
/// test-backend-ops keeps its cases, so that a gap is visible at a glance. Layer numbers refer to
/// the test models' 4 layers over 4×4 vision grids.
public let variantCases: [(variant: String, properties: Set<VariantProperty>)] = {
    let table = """
    variant                                                     gradients packing decoding flops
    baseline                                                        x        x       x       x
    mask-vv@from:1                                                  x        x       x       x
    mask-vv@from:0                                                  x        x       x       x
    skip-vattn@layers:1..<3                                         x        x       x       x
    skip-vattn(self=false)@from:2                                   x        x       x       x
    skip-vattn(self=false)@layers:0,2                               x        x       x       x
    skip-vattn-ffn@from:1                                           x        x       x       x
    skip-vattn-ffn(mlp=0)@layers:0,3                                x        x       x       x
    proxyv(r=2)@from:1                                              x        x       x       x
    proxyv(r=4)@layers:1..<3                                        x        x       x       x
    proxyv-learned(n=3)@from:2                                      x        x       x       x
    proxyv-learned(n=2,mlp=6)@layers:0..<2                          x        x       x       x
    fastv(k=2,r=0.5)                                                x        x       x       x
    pyramiddrop(layers=1/2/3,keep=0.5/0.25/0.125)                   x        x       x       x
    pyramiddrop(layers=1/2,keep=0.5/0.25)+skip-vattn@from:2         x        x       x       x
    visionzip(dominant=4,contextual=2)                              x        x       x       x
    visionzip(dominant=3,contextual=3)+proxyv-learned(n=2)@from:1   x        x       x       x
    mask-vv@layers:0..<2+skip-vattn-ffn@from:2                      x        x       x       x
    skip-vffn@from:1                                                x        x       x       x
    skip-vffn(dropkv=true)@layers:1..<3                             x        x       x       x
    kv-only@from:2                                                  x        x       x       x
    kv-only@layers:0,2                                              x        x       x       x
    mod(keep=0.5)@from:1                                            x        x       x       x
    mod(keep=0.75/0.25,decay=cos)@layers:0..<3                      x        x       x       x
    downsample(r=2)                                                 x        x       x       x
    downsample(r=2)+mod(keep=0.5)@from:2                            x        x       x       x
    downsample(r=2)+proxyv-learned(n=2)@from:1                      x        x       x       x
    """
    let rows = table.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
    let columns = rows[0].dropFirst().map { VariantProperty(rawValue: $0)! }
    return rows.dropFirst().map { row in
        precondition(row.count == columns.count + 1, "a case has one mark per property: \(row)")
        return (row[0], Set(zip(columns, row.dropFirst()).filter { $0.1 == "x" }.map(\.0)))
    }
}()

/// The vision encoder's width in the variant tests (kv-only's projectors read its features).
public let caseFeatureWidth = 6

/// Seeded encoder features of a layout's vision tokens [crops·G², caseFeatureWidth], by token
/// (crop by crop in raster order), so they do not depend on packing.
public func caseFeatures(_ layout: TokenLayout, seed: UInt64 = 21) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    return Tensor(shape: [layout.crops * layout.grid * layout.grid, caseFeatureWidth], std: 1, rng: &rng)
}

/// The cases that carry a property.
public func variants(with property: VariantProperty) -> [String] {
    variantCases.filter { $0.properties.contains(property) }.map(\.variant)
}
