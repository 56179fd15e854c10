import Foundation
import Kernels

/// How images become vision tokens: with AnyRes crops (2 to 5), an image of 2S×2S pixels
/// (S = grid · patch) is seen as a base view (the whole image resized to S×S) plus up to four
/// sub-crops (its quadrants at full detail), as LLaVA-NeXT sees it; with one crop, an image of
/// S×S pixels is seen whole at full detail, as LLaVA-1.5 sees it. Each view is cut into
/// grid×grid patches of patch×patch pixels.
public struct VisionGeometry: Equatable, Sendable, Codable {
    public let grid: Int
    public let patch: Int
    /// Views per image: 1 (the image itself) or 2 to 5 (base and up to four quadrants).
    public let crops: Int

    public init(grid: Int, patch: Int, crops: Int) {
        precondition(grid > 0 && patch > 0 && (1...5).contains(crops), "grid and patch positive, 1 to 5 crops")
        self.grid = grid; self.patch = patch; self.crops = crops
    }

    /// Side of one view in pixels.
    public var viewSide: Int { grid * patch }
    /// Side of the image the tasks draw, in pixels.
    public var imageSide: Int { crops == 1 ? viewSide : 2 * viewSide }

    /// The views of an image: the image itself, or the base view, then the quadrants in raster order.
    public func views(of image: Canvas) -> [Canvas] {
        precondition(image.width == imageSide && image.height == imageSide, "images are \(imageSide)×\(imageSide)")
        if crops == 1 { return [image] }
        let s = viewSide
        let quadrants = [(0, 0), (s, 0), (0, s), (s, s)].map { image.cropped(x: $0.0, y: $0.1, width: s, height: s) }
        return Array(([image.downsampled(width: s, height: s)] + quadrants).prefix(crops))
    }
}

/// A frozen, seeded stand-in for a pretrained vision encoder: each patch's pixels go through a
/// fixed random projection and tanh; what the patch shows is "recognised" as a pretrained encoder
/// recognises glyphs and objects — each region label in it (a coloured shape, a colour;
/// `Canvas.labels`) adds a fixed random embedding weighted by its share of the patch's labelled
/// pixels, and each character or shape centred in it (`Canvas.marks`) adds its own embedding
/// (a coloured shape's: its kind's plus its colour's);
/// each patch adds a fixed embedding of its row and column in its view, as a ViT's features
/// carry the position embeddings added to its patches (CLIP's are learned; LLaVA encodes each
/// crop separately, so a position is the crop's own); then each patch adds its four grid
/// neighbours' features, each through a fixed random map of its direction, so features are
/// contextual as a ViT's are and tell left from right. Reading
/// still means putting characters in order across patches (and, in the half-resolution base
/// view, telling apart two characters that share a patch). The saliency of a patch (VisionZip
/// ranks by it, as by the encoder's CLS attention) is the spread of its pixels: edges and text
/// stand out.
public struct VisionEncoder: Sendable {
    public let geometry: VisionGeometry
    public let features: Int
    private let projection: [Float]   // [features, patch·patch·3]
    private let bias: [Float]
    /// [4 directions (left, right, up, down), features, features]: how a neighbour's features
    /// enter a patch's.
    private let context: [Float]
    /// [G², features]: what each patch adds for its place in the view, in raster order.
    private let positions: [Float]
    private let seed: UInt64

    public init(geometry: VisionGeometry, features: Int, seed: UInt64) {
        self.geometry = geometry
        self.features = features
        self.seed = seed
        var rng = SeededGenerator(seed: seed)
        let inputs = geometry.patch * geometry.patch * 3
        projection = (0..<features * inputs).map { _ in rng.nextNormal() * (3 / Float(inputs)).squareRoot() }
        bias = (0..<features).map { _ in rng.nextNormal() * 0.1 }
        context = (0..<4 * features * features).map { _ in rng.nextNormal() * 0.5 / Float(features).squareRoot() }
        positions = (0..<geometry.grid * geometry.grid * features).map { _ in 0.15 * rng.nextNormal() }
    }

    /// The fixed embedding the encoder "recognises" a label by. A coloured shape (its region or
    /// its centre) is recognised by its kind and its colour apart, the sum of the two parts'
    /// embeddings, as a pretrained encoder's features are compositional (a linear probe reads
    /// an object's colour and its shape separately).
    /// A hash of what the encoder adds to the pixels: its weights and the embeddings of regions
    /// and marks (seeded, so the same on every machine). Run ids include it, so that a run made
    /// with another encoder stand-in is not taken as complete.
    public var fingerprint: UInt64 {
        let labels: [UInt32] = [1, 2, 0x2000_1003, 0x4000_2005, 0x1000_0041]
        let values = projection + bias + context + positions + labels.flatMap(embedding(of:))
        return fnv1a(values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
    }

    func embedding(of label: UInt32) -> [Float] {
        func part(_ label: UInt32) -> [Float] {
            var rng = SeededGenerator(seed: seed ^ (UInt64(label) &* 0x9E37_79B9_7F4A_7C15))
            return (0..<features).map { _ in 0.7 * rng.nextNormal() }
        }
        guard [0x2, 0x4].contains(label >> 28) else { return part(label) }
        return zip(part(label & 0xFFFF_F000), part(label & 0xF000_0FFF)).map { ($0 + $1) * Float(0.5).squareRoot() }
    }

    /// Features [views · G², features] (view by view, patches in raster order) and the saliency of each.
    public func encode(_ image: Canvas) -> (features: Tensor, saliency: [Float]) {
        let views = geometry.views(of: image), g = geometry.grid, p = geometry.patch, inputs = p * p * 3
        let pixels = Tensor(shape: [views.count * g * g, inputs])
        var saliency = [Float](repeating: 0, count: views.count * g * g)
        for (v, view) in views.enumerated() {
            for py in 0..<g { for px in 0..<g {
                let token = v * g * g + py * g + px, row = pixels.data + token * inputs
                var i = 0
                for y in 0..<p { for x in 0..<p {
                    let c = view[px * p + x, py * p + y]
                    row[i] = c.r - 0.5; row[i + 1] = c.g - 0.5; row[i + 2] = c.b - 0.5
                    i += 3
                } }
                let mean = (0..<inputs).reduce(Float(0)) { $0 + row[$1] } / Float(inputs)
                saliency[token] = ((0..<inputs).reduce(Float(0)) { $0 + (row[$1] - mean) * (row[$1] - mean) } / Float(inputs)).squareRoot()
            } }
        }
        let local = Tensor(shape: [pixels.shape[0], features])
        projection.withUnsafeBufferPointer { w in
            Linear.forward(x: pixels.data, w: UnsafeMutablePointer(mutating: w.baseAddress!), y: local.data,
                           rows: pixels.shape[0], inFeatures: inputs, outFeatures: features)
        }
        for t in 0..<local.shape[0] { for j in 0..<features { local[t * features + j] = tanhf(local[t * features + j] + bias[j]) } }
        for (v, view) in views.enumerated() {
            for py in 0..<g { for px in 0..<g {
                var counts: [UInt32: Int] = [:]
                for y in 0..<p { for x in 0..<p where view.label(x: px * p + x, y: py * p + y) != 0 { counts[view.label(x: px * p + x, y: py * p + y), default: 0] += 1 } }
                let total = Float(counts.values.reduce(0, +)), token = v * g * g + py * g + px
                for (label, n) in counts.sorted(by: { $0.key < $1.key }) {   // a fixed order: sums are bit-reproducible
                    let e = embedding(of: label), share = Float(n) / total
                    for j in 0..<features { local[token * features + j] += share * e[j] }
                }
            } }
            for mark in view.marks {
                let e = embedding(of: mark.label), token = v * g * g + (mark.y / p) * g + mark.x / p
                for j in 0..<features { local[token * features + j] += e[j] }
            }
            for i in 0..<g * g * features { local[v * g * g * features + i] += positions[i] }
        }
        // Context: each neighbour within the view through its direction's map (one product a direction).
        let out = local.copy(), mapped = Tensor(shape: local.shape)
        context.withUnsafeBufferPointer { maps in
            for (d, (dx, dy)) in [(-1, 0), (1, 0), (0, -1), (0, 1)].enumerated() {
                Linear.forward(x: local.data, w: UnsafeMutablePointer(mutating: maps.baseAddress! + d * features * features), y: mapped.data,
                               rows: local.shape[0], inFeatures: features, outFeatures: features)
                for v in 0..<views.count { for py in 0..<g { for px in 0..<g where (0..<g).contains(px + dx) && (0..<g).contains(py + dy) {
                    let token = v * g * g + py * g + px, neighbour = v * g * g + (py + dy) * g + px + dx
                    for i in 0..<features { out[token * features + i] += mapped[neighbour * features + i] }
                } } }
            }
        }
        return (out, saliency)
    }
}
