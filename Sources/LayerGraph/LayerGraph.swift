import Foundation
import Kernels

/// A (query kind, key kind) pair of groups whose attention is masked, on top of causality.
public struct MaskedPair: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let query: GroupKind, key: GroupKind
    /// A query still attends to its own key (the diagonal), as under mask-vv.
    public let keepsSelf: Bool

    public init(_ query: GroupKind, _ key: GroupKind, keepsSelf: Bool = false) {
        self.query = query; self.key = key; self.keepsSelf = keepsSelf
    }

    public static func < (a: MaskedPair, b: MaskedPair) -> Bool { (a.query, a.key) < (b.query, b.key) }

    public var description: String { "\(query)→\(key)" + (keepsSelf ? " (self kept)" : "") }
}

/// How ProxyV makes its proxies.
public enum ProxySource: Equatable, Sendable {
    /// Each crop's vision grid resized bilinearly by 1/r per side; a proxy guides its r×r block.
    case spatial(reduce: Int)
    /// `count` learned queries per crop attend over the crop's vision tokens; each vision token
    /// is guided by a softmax over the proxies of the transposed attention logits.
    case learned(count: Int)
}

/// Small modules a layer runs besides attention and the FFN.
public enum LightModule: Equatable, Sendable, CustomStringConvertible {
    /// skip-vattn-ffn: v ← v + W₃·SiLU(W₂·SiLU(W₁·RMSNorm(v))), d→w→w→d, on vision tokens.
    case visionMLP(width: Int)
    /// ProxyV, before its first layer: proxies made from each crop's vision tokens.
    case createProxies(ProxySource)
    /// ProxyV, after the layer: v ← RMSNorm(W₂·SiLU(W₁·[W_in·v ; up(W_ctx·proxy)]) + v), width w.
    case guidedUpdate(width: Int)
    /// After the last ProxyV layer the proxies are discarded; vision tokens go on as before.
    case dropProxies
    /// Before the layer (the first), per crop: keep the `dominant` most salient vision tokens and
    /// merge the others into `contextual` tokens, each the mean of a sampled token and the
    /// remaining tokens most similar to it (VisionZip).
    case zipVision(dominant: Int, contextual: Int)
    /// After the layer, keep this fraction of the original vision tokens: those the last question
    /// token attended to most in this layer (mean over heads). FastV and PyramidDrop.
    case pruneVision(keep: Double)
    /// Before the layer (the first), per crop: each R×R block of the vision grid becomes one token,
    /// the mean of the block, in the place of its top-left token (downsampling).
    case poolVision(reduce: Int)
    /// Before the layer: the vision tokens' hidden states are replaced by this layer's projector
    /// (Linear-GELU-Linear, `features` → d) applied to the vision encoder's features (kv-only).
    case reprojectVision(features: Int)
    /// Before the layer: a router (a linear score s, weight g = 1 + 0.2·tanh s) keeps the top
    /// `keep` of each sequence's vision tokens; only they and the other groups run the layer, the
    /// kept vision tokens' FFN update scaled by g; the rest pass it unchanged (p-MoD).
    case route(keep: Double)

    public var description: String {
        switch self {
        case let .visionMLP(w): return "vision MLP (width \(w))"
        case let .createProxies(.spatial(r)): return "create proxies (bilinear 1/\(r))"
        case let .createProxies(.learned(n)): return "create proxies (\(n) learned queries per crop)"
        case let .guidedUpdate(w): return "guided vision update (width \(w))"
        case .dropProxies: return "drop proxies"
        case let .zipVision(d, c): return "VisionZip: keep \(d) dominant + \(c) merged contextual vision tokens per crop"
        case let .pruneVision(keep): return "keep \(keep) of the vision tokens (by the last question token's attention)"
        case let .poolVision(r): return "average-pool each crop's vision grid \(r)×\(r)"
        case let .reprojectVision(f): return "vision states re-projected from the encoder's \(f) features"
        case let .route(keep): return "router keeps \(keep) of the vision tokens for this layer"
        }
    }
}

/// What one decoder layer does, declaratively: which token groups are attention queries, which
/// are keys/values, which attend only to themselves, which group pairs are masked, which groups
/// take the FFN, and which light modules run.
public struct LayerNode: Equatable, Sendable {
    /// Q, attention over the allowed keys, O-projection and residual.
    public var queries: Set<GroupKind>
    /// K and V are computed; these tokens can be attended to (causally, by position).
    public var keys: Set<GroupKind>
    /// No Q: the attention update is the O-projection of the token's own value.
    public var selfOnly: Set<GroupKind>
    public var masked: Set<MaskedPair>
    public var ffn: Set<GroupKind>
    public var modules: [LightModule]

    static let allTokens: Set<GroupKind> = [.system, .vision, .newline, .question, .answer]

    public static let baseline = LayerNode(queries: allTokens, keys: allTokens, selfOnly: [], masked: [], ffn: allTokens, modules: [])

    /// The attention mask of this layer between query and key tokens: a key must belong to an
    /// attended group, come no later than the query (by position id), and not be masked.
    public func attentionMask(queries: [LayoutToken], keys: [LayoutToken]) -> AttentionMask {
        let attended = keys.map { self.keys.contains($0.kind) }
        return AttentionMask(queries: queries.count, keys: keys.count) { i, j in
            attended[j] && keys[j].position <= queries[i].position && allows(query: queries[i], key: keys[j])
        }
    }

    /// Whether this layer's KV cache keeps a group's keys and values for decoding: the tokens
    /// decoded after the prefill (answers) may attend to it. Proxies (no text attends to them)
    /// and, under skip-vffn(dropkv=true), vision tokens leave the cache after the prefill.
    public func cachesKeys(of kind: GroupKind) -> Bool {
        keys.contains(kind) && !masked.contains { $0.query == .answer && $0.key == kind }
    }

    /// Whether a query token of kind q may attend to a key token of kind k (apart from causality).
    public func allows(query q: LayoutToken, key k: LayoutToken) -> Bool {
        for pair in masked where pair.query == q.kind && pair.key == k.kind {
            if !(pair.keepsSelf && q == k) { return false }
        }
        return true
    }
}

/// A compiled variant: one node per decoder layer.
public struct LayerGraph: Equatable, Sendable {
    public let spec: VariantSpec
    public let nodes: [LayerNode]

    /// A graph made of given nodes (a probe that runs one layer of each kind, for timing).
    public init(spec: VariantSpec, nodes: [LayerNode]) {
        self.spec = spec
        self.nodes = nodes
    }

    /// Compiles a variant for a decoder of `layers` layers and width `hidden` over vision grids of
    /// side `grid`, from a vision encoder of `features` features per token (0: not known; only
    /// kv-only needs it). Impossible settings (a layer past the last, r not dividing the grid, two
    /// variants on one layer) are errors that say which and why.
    public init(spec: VariantSpec, layers: Int, hidden: Int, grid: Int, features: Int = 0) throws {
        self.spec = spec
        var nodes = [LayerNode](repeating: .baseline, count: layers)
        var claimedBy = [String?](repeating: nil, count: layers)
        func fail(_ why: String) -> VariantCompileError { VariantCompileError(spec: spec.text, problem: why) }
        for part in spec.parts where part.variant.placesItself {
            let (after, keep): ([Int], [Double])
            switch part.variant {
            case let .fastV(k, r): (after, keep) = ([k], [1 - r])
            case let .pyramidDrop(ks, fractions): (after, keep) = (ks, fractions)
            case let .visionZip(d, c):
                guard d + c >= 1, d + c <= grid * grid else { throw fail("visionzip keeps \(d) + \(c) tokens of a crop's \(grid * grid)") }
                nodes[0].modules.insert(.zipVision(dominant: d, contextual: c), at: 0)
                continue
            case let .downsample(r):
                guard grid % r == 0 else { throw fail("downsample factor r = \(r) does not divide the grid side \(grid)") }
                nodes[0].modules.insert(.poolVision(reduce: r), at: 0)
                continue
            default: continue
            }
            for (k, fraction) in zip(after, keep) {
                guard k < layers else { throw fail("\(part.variant.name) prunes after layer \(k), but layers after it run only up to \(layers)") }
                nodes[k - 1].modules.append(.pruneVision(keep: fraction))
            }
        }
        for part in spec.parts where part.variant != .baseline && !part.variant.placesItself {
            if case let .from(l) = part.schedule, l > layers { throw fail("layer \(l) is past the last layer (\(layers - 1))") }
            let scheduled = part.schedule.layers(of: layers)
            if scheduled.isEmpty { continue }
            if let bad = scheduled.first(where: { $0 < 0 || $0 >= layers }) {
                throw fail("layer \(bad) is past the last layer (\(layers - 1))")
            }
            for l in scheduled {
                if let other = claimedBy[l] { throw fail("layer \(l) is claimed by both \(other) and \(part.variant.name)") }
                claimedBy[l] = part.variant.name
            }
            let quarter = hidden / 4
            switch part.variant {
            case .baseline, .fastV, .pyramidDrop, .visionZip, .downsample: break
            case .maskVisionToVision:
                for l in scheduled { nodes[l].masked.insert(MaskedPair(.vision, .vision, keepsSelf: true)) }
            case let .skipVisionAttention(selfUpdate):
                for l in scheduled {
                    nodes[l].queries.remove(.vision)
                    if selfUpdate { nodes[l].selfOnly.insert(.vision) }
                }
            case let .skipVisionBlock(width):
                let w = width ?? quarter
                guard w <= 16 * hidden else { throw fail("the light MLP's width \(w) exceeds 16 × the hidden size \(hidden)") }
                for l in scheduled {
                    nodes[l].queries.remove(.vision)
                    nodes[l].ffn.remove(.vision)
                    if w > 0 { nodes[l].modules.append(.visionMLP(width: w)) }
                }
            case let .skipVisionFFN(dropKV):
                for l in scheduled {
                    nodes[l].ffn.remove(.vision)
                    if dropKV { nodes[l].masked.insert(MaskedPair(.answer, .vision)) }
                }
            case .kvOnly:
                guard features > 0 else { throw fail("kv-only re-projects the vision encoder's features, and this model does not say how many it has") }
                if spec.parts.contains(where: { ["visionzip", "downsample"].contains($0.variant.name) }) {
                    throw fail("kv-only re-projects each vision token from its own encoder features; it cannot follow visionzip or downsample, which merge tokens")
                }
                for l in scheduled {
                    nodes[l].queries.remove(.vision)
                    nodes[l].ffn.remove(.vision)
                    nodes[l].modules.append(.reprojectVision(features: features))
                }
            case let .mixtureOfDepths(first, last, cosine):
                for (i, l) in scheduled.enumerated() {
                    let t = scheduled.count > 1 ? Double(i) / Double(scheduled.count - 1) : 0
                    let keep = first + (last - first) * (cosine ? (1 - cos(Double.pi * t)) / 2 : t)
                    nodes[l].modules.append(.route(keep: keep))
                }
            case .proxyV, .proxyVLearned:
                let source: ProxySource, width: GuidedWidth
                switch part.variant {
                case let .proxyV(r, w):
                    guard grid % r == 0 else { throw fail("proxyv reduce factor r = \(r) does not divide the grid side \(grid)") }
                    if let other = spec.parts.first(where: { ["visionzip", "downsample"].contains($0.variant.name) }) {
                        throw fail("spatial proxyv needs each crop's full grid; with \(other.variant.name) use proxyv-learned")
                    }
                    (source, width) = (.spatial(reduce: r), w)
                case let .proxyVLearned(n, w):
                    guard n >= 1, n <= grid * grid else { throw fail("proxyv-learned needs 1 to \(grid * grid) proxies per crop (one per vision token at most), got \(n)") }
                    (source, width) = (.learned(count: n), w)
                default: preconditionFailure()
                }
                guard let first = scheduled.first, scheduled == Array(first..<(first + scheduled.count)) else {
                    throw fail("\(part.variant.name) needs a contiguous run of layers (proxies are created once and carried)")
                }
                let w = width.resolved(hidden: hidden)
                guard w <= 16 * hidden else { throw fail("the guided update's width \(w) exceeds 16 × the hidden size \(hidden)") }
                for l in scheduled {
                    nodes[l].queries = [.system, .proxy, .newline, .question, .answer]
                    nodes[l].keys.insert(.proxy)
                    nodes[l].ffn = nodes[l].queries
                    nodes[l].masked.formUnion([MaskedPair(.proxy, .vision)] + [.system, .newline, .question, .answer].map { MaskedPair($0, .proxy) })
                    nodes[l].modules.append(.guidedUpdate(width: w))
                }
                nodes[first].modules.insert(.createProxies(source), at: 0)
                nodes[scheduled.last!].modules.append(.dropProxies)
                if nodes.contains(where: { $0.modules.contains(where: \.prunes) }) {
                    throw fail("\(part.variant.name) keeps every vision token's place in its crop; it cannot be combined with token pruning")
                }
            }
        }
        for (l, node) in nodes.enumerated() where node.routes && node.modules.contains(where: \.prunes) {
            throw fail("layer \(l) both routes and prunes vision tokens; mod cannot share a layer with token pruning")
        }
        self.nodes = nodes
    }

    /// The layer graph as text: runs of identical layers, each with who queries, who is attended,
    /// what is masked, who takes the FFN and which light modules run.
    public func rendered() -> String {
        func list(_ s: Set<GroupKind>) -> String { s.isEmpty ? "-" : s.sorted().map(\.rawValue).joined(separator: ", ") }
        var lines = ["variant \(spec.text)"]
        var start = 0
        while start < nodes.count {
            var end = start + 1
            while end < nodes.count && nodes[end] == nodes[start] { end += 1 }
            let n = nodes[start]
            lines.append(end - start == 1 ? "layer \(start)" : "layers \(start)..<\(end)")
            if n == .baseline {
                lines.append("  baseline: every group queries, is attended and takes the FFN")
            } else {
                lines.append("  queries      \(list(n.queries))")
                lines.append("  keys/values  \(list(n.keys))")
                if !n.selfOnly.isEmpty { lines.append("  self only    \(list(n.selfOnly)) (update = O·own value)") }
                if !n.masked.isEmpty { lines.append("  masked       " + n.masked.sorted().map(\.description).joined(separator: ", ")) }
                lines.append("  FFN          \(list(n.ffn))")
            }
            if !n.modules.isEmpty { lines.append("  modules      " + n.modules.map(\.description).joined(separator: "; ")) }
            start = end
        }
        return lines.joined(separator: "\n")
    }
}

/// A variant that parses but cannot apply to this model.
public struct VariantCompileError: InputError, Equatable {
    public let spec: String
    public let problem: String
    public init(spec: String, problem: String) { self.spec = spec; self.problem = problem }
    public var description: String { "variant '\(VariantSyntaxError.elided(spec))': \(problem)" }
}

extension Variant {
    /// The variant's name in the text form.
    public var name: String {
        switch self {
        case .baseline: return "baseline"
        case .maskVisionToVision: return "mask-vv"
        case .skipVisionAttention: return "skip-vattn"
        case .skipVisionBlock: return "skip-vattn-ffn"
        case .proxyV: return "proxyv"
        case .proxyVLearned: return "proxyv-learned"
        case .fastV: return "fastv"
        case .pyramidDrop: return "pyramiddrop"
        case .visionZip: return "visionzip"
        case .skipVisionFFN: return "skip-vffn"
        case .kvOnly: return "kv-only"
        case .mixtureOfDepths: return "mod"
        case .downsample: return "downsample"
        }
    }

    /// Token-reduction baselines name their layers as parameters instead of taking a schedule.
    public var placesItself: Bool {
        switch self {
        case .fastV, .pyramidDrop, .visionZip, .downsample: return true
        default: return false
        }
    }
}

extension LightModule {
    var prunes: Bool { if case .pruneVision = self { return true } else { return false } }

    /// How many of n vision tokens a router keeps: ⌊keep·n⌋, as p-MoD truncates.
    public static func routedCount(keep: Double, of n: Int) -> Int { Int((keep * Double(n) + 1e-9).rounded(.down)) }
}

extension LayerNode {
    /// The router's share of the vision tokens that run this layer, if it routes (mod).
    public var routedKeep: Double? {
        for case let .route(keep) in modules { return keep }
        return nil
    }
    var routes: Bool { routedKeep != nil }
}
