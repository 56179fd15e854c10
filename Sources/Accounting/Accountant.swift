import LayerGraph

/// How attention pairs and the parts outside the decoder layers are counted.
public enum CountingConvention: String, CaseIterable, Sendable {
    /// The paper's (inferred, see README): matrix products of the decoder layers only, attention
    /// dense over every (query, key) pair of a layer, the LM head not counted.
    case paper
    /// What the executor multiplies: attention over each 64-row query block's key span
    /// (`AttentionMask.computedPairs`), and the LM head over every final token, as a last entry.
    case executed
}

/// Multiply-accumulates of one named operation of a layer; FLOPs are twice that.
public struct OperationCount: Equatable, Sendable {
    public let name: String
    public let macs: Int
    public var flops: Int { 2 * macs }
}

/// The operations of one decoder layer (at index `layers`: the LM head, executed convention).
public struct LayerCount: Equatable, Sendable {
    public let layer: Int
    public let tokens: [GroupKind: Int]
    public let operations: [OperationCount]
    public var macs: Int { operations.reduce(0) { $0 + $1.macs } }
    public var flops: Int { 2 * macs }
}

/// FLOPs, MACs, parameters and KV-cache bytes of a compiled layer graph over a token layout,
/// read from the same nodes the executor runs.
///
/// The token layout is replayed through the graph as the executor changes it: VisionZip and
/// pruning shrink the vision group, ProxyV appends proxies and later drops them. Which vision
/// tokens survive depends on the data; the replay keeps the first ones, which gives the same
/// counts and, with tokens packed in position order, the same attention key spans.
public struct Accountant {
    public let config: LlamaConfig
    public let graph: LayerGraph
    public let layout: TokenLayout

    public init(config: LlamaConfig, graph: LayerGraph, layout: TokenLayout) {
        self.config = config; self.graph = graph; self.layout = layout
    }

    /// The tokens each layer works on (after merging, proxy creation and routing, before pruning
    /// and dropping), layer by layer, and the tokens leaving the last layer.
    public var layerLayouts: [TokenLayout] {
        let replayed = replay()
        return replayed.working + [replayed.final]
    }

    /// Per layer the tokens entering it (after merging and proxy creation) and those that run it
    /// (a router's skipped vision tokens left out), and the tokens leaving the last layer.
    private func replay() -> (entering: [TokenLayout], working: [TokenLayout], final: TokenLayout) {
        var current = layout, entering: [TokenLayout] = [], working: [TokenLayout] = []
        func keepingVision(_ kept: Set<Int>) -> TokenLayout {
            current.keeping(rows: current.tokens.indices.filter { current.tokens[$0].kind != .vision || kept.contains($0) })
        }
        for node in graph.nodes {
            for module in node.modules {
                switch module {
                case let .zipVision(dominant, contextual):
                    current = keepingVision(Set((0..<current.crops).flatMap { current.visionRows(crop: $0).prefix(dominant + contextual) }))
                case let .poolVision(r):
                    // Each block's top-left token stays, as the executor keeps it.
                    let g = current.grid
                    current = keepingVision(Set(current.rows(of: [.vision]).filter { (current.tokens[$0].index / g) % r == 0 && current.tokens[$0].index % g % r == 0 }))
                case let .createProxies(.spatial(r)):
                    current = current.appending(current.proxyTokens(perCrop: (current.grid / r) * (current.grid / r)))
                case let .createProxies(.learned(n)):
                    current = current.appending(current.proxyTokens(perCrop: n))
                default: break
                }
            }
            entering.append(current)
            if let keep = node.routedKeep {
                let vision = current.rows(of: [.vision]).sorted { current.tokens[$0].position < current.tokens[$1].position }
                working.append(keepingVision(Set(vision.prefix(LightModule.routedCount(keep: keep, of: vision.count)))))
            } else {
                working.append(current)
            }
            for module in node.modules {
                switch module {
                case .dropProxies:
                    current = current.keeping(rows: current.rows(of: Set(GroupKind.allCases).subtracting([.proxy])))
                case let .pruneVision(keep):
                    let target = Int((keep * Double(layout.rows(of: [.vision]).count)).rounded())
                    let vision = current.rows(of: [.vision]).sorted { current.tokens[$0].position < current.tokens[$1].position }
                    let dropped = Set(vision.dropFirst(target))
                    current = current.keeping(rows: current.tokens.indices.filter { !dropped.contains($0) })
                default: break
                }
            }
        }
        return (entering, working, current)
    }

    /// Prefill counts, layer by layer and operation by operation.
    public func prefill(convention: CountingConvention = .paper) -> [LayerCount] {
        let d = config.hidden, kv = config.kvHeads * config.headDim, f = config.ffn
        let (entering, layouts, final) = replay()
        var layers: [LayerCount] = []
        var perCropProxies = 0
        var lastPairs: (node: LayerNode, layout: TokenLayout, pairs: Int)?
        for (l, node) in graph.nodes.enumerated() {
            let current = layouts[l]
            let counts = Dictionary(grouping: current.tokens, by: \.kind).mapValues(\.count)
            func count(_ kinds: Set<GroupKind>) -> Int { kinds.reduce(0) { $0 + (counts[$1] ?? 0) } }
            let q = count(node.queries), s = count(node.selfOnly), ffnTokens = count(node.ffn)
            let kvTokens = count(node.keys.union(node.selfOnly))
            let vision = counts[.vision] ?? 0, proxies = counts[.proxy] ?? 0
            let pairs: Int
            switch convention {
            case .paper: pairs = q * count(node.keys)
            case .executed:
                if let last = lastPairs, last.node == node, last.layout == current { pairs = last.pairs } else {
                    let queries = current.tokens.filter { node.queries.contains($0.kind) }
                    let keys = current.tokens.filter { node.keys.union(node.selfOnly).contains($0.kind) }
                    pairs = node.attentionMask(queries: queries, keys: keys).computedPairs
                    lastPairs = (node, current, pairs)
                }
            }
            var ops = [
                OperationCount(name: "q_proj", macs: q * d * d),
                OperationCount(name: "k_proj", macs: kvTokens * d * kv),
                OperationCount(name: "v_proj", macs: kvTokens * d * kv),
                OperationCount(name: "attention_scores", macs: pairs * d),
                OperationCount(name: "attention_values", macs: pairs * d),
                OperationCount(name: "o_proj", macs: (q + s) * d * d),
                OperationCount(name: "ffn", macs: 3 * ffnTokens * d * f),
            ]
            for module in node.modules {
                switch module {
                case let .visionMLP(w):
                    ops.append(OperationCount(name: "light_mlp", macs: vision * (d * w + w * w + w * d)))
                case let .createProxies(source):
                    if case let .learned(n) = source {
                        let h = d / 4, m = vision / max(current.crops, 1)
                        ops.append(OperationCount(name: "proxy_init", macs: vision * d * h + current.crops * (2 * n * m * h + n * m * d)))
                        perCropProxies = n
                    } else { perCropProxies = 0 }
                case let .guidedUpdate(w):
                    let splat = vision * perCropProxies * w   // learned proxies only; spatial ones are copied
                    ops.append(OperationCount(name: "guided_update",
                                              macs: vision * d * w + proxies * d * w + splat + vision * 2 * w * w + vision * w * d))
                case let .reprojectVision(features):
                    ops.append(OperationCount(name: "reprojection", macs: vision * (features * d + d * d)))
                case .route:
                    ops.append(OperationCount(name: "router", macs: entering[l].rows(of: [.vision]).count * d))
                default: break
                }
            }
            layers.append(LayerCount(layer: l, tokens: counts, operations: ops))
        }
        if convention == .executed {
            layers.append(LayerCount(layer: graph.nodes.count, tokens: Dictionary(grouping: final.tokens, by: \.kind).mapValues(\.count),
                                     operations: [OperationCount(name: "lm_head", macs: final.count * d * config.vocab)]))
        }
        return layers
    }

    /// Elementwise work that is not a matrix product, reported apart from the totals: RMSNorm
    /// 4 FLOPs per normalised element, softmax 4 per attention pair, RoPE 3 per rotated query or
    /// key element. These are conventions of this count (the paper leaves them out).
    public func prefillElementwise(convention: CountingConvention = .paper) -> (norms: Int, softmax: Int, rope: Int) {
        let d = config.hidden, kv = config.kvHeads * config.headDim
        var norms = 0, softmax = 0, rope = 0
        for (count, node) in zip(prefill(convention: convention), graph.nodes) {
            func tokens(_ kinds: Set<GroupKind>) -> Int { kinds.reduce(0) { $0 + (count.tokens[$1] ?? 0) } }
            let all = count.tokens.values.reduce(0, +), q = tokens(node.queries), k = tokens(node.keys.union(node.selfOnly))
            norms += 4 * d * (all + tokens(node.ffn))
            softmax += 4 * (count.operations.first { $0.name == "attention_scores" }!.macs / d)
            rope += 3 * (q * d + k * kv)
        }
        return (norms, softmax, rope)
    }

    /// One greedy decoding step after the prompt and `generated` earlier new tokens: the new token
    /// attends to every cached entry (`LayerNode.cachesKeys`: no proxies) and itself.
    public func decodeStep(generated: Int = 0, convention: CountingConvention = .paper) -> [LayerCount] {
        let d = config.hidden, kv = config.kvHeads * config.headDim, f = config.ffn
        let layouts = layerLayouts
        var layers = graph.nodes.enumerated().map { l, node -> LayerCount in
            let entries = layouts[l].tokens.filter { node.cachesKeys(of: $0.kind) }.count + generated + 1
            return LayerCount(layer: l, tokens: [.answer: 1], operations: [
                OperationCount(name: "q_proj", macs: d * d), OperationCount(name: "k_proj", macs: d * kv),
                OperationCount(name: "v_proj", macs: d * kv), OperationCount(name: "attention_scores", macs: entries * d),
                OperationCount(name: "attention_values", macs: entries * d), OperationCount(name: "o_proj", macs: d * d),
                OperationCount(name: "ffn", macs: node.ffn.contains(.answer) ? 3 * d * f : 0),
            ])
        }
        if convention == .executed {
            layers.append(LayerCount(layer: graph.nodes.count, tokens: [.answer: 1],
                                     operations: [OperationCount(name: "lm_head", macs: d * config.vocab)]))
        }
        return layers
    }

    /// Weights of the decoder and of the variant's modules, by module.
    public var parameters: [(module: String, count: Int)] {
        let d = config.hidden, kv = config.kvHeads * config.headDim, f = config.ffn
        var rows: [(String, Int)] = [("embedding", config.vocab * d),
                                     ("decoder layers", config.layers * (2 * d + 2 * d * d + 2 * d * kv + 3 * d * f)),
                                     ("final norm", d)]
        if !config.tiedEmbeddings { rows.append(("lm head", config.vocab * d)) }
        var light = 0, guided = 0, initializer = 0, reprojectors = 0, routers = 0
        for node in graph.nodes {
            for module in node.modules {
                switch module {
                case let .visionMLP(w): light += d + 2 * d * w + w * w
                case let .guidedUpdate(w): guided += 3 * d * w + 2 * w * w + d
                case let .createProxies(.learned(n)): initializer += (d / 4) * d + n * (d / 4)
                case let .reprojectVision(f): reprojectors += f * d + d + d * d + d
                case .route: routers += d
                default: break
                }
            }
        }
        if light > 0 { rows.append(("light MLPs", light)) }
        if guided > 0 { rows.append(("guided vision updates", guided)) }
        if initializer > 0 { rows.append(("proxy initializer", initializer)) }
        if reprojectors > 0 { rows.append(("per-layer projectors", reprojectors)) }
        if routers > 0 { rows.append(("routers", routers)) }
        return rows
    }

    /// Bytes of the KV cache after the prefill: per layer, K and V of every token later tokens may
    /// attend to (`LayerNode.cachesKeys`), at `bytesPerValue` each.
    public func kvCacheBytes(bytesPerValue: Int) -> Int {
        let kv = config.kvHeads * config.headDim
        return prefill().enumerated().reduce(0) { total, item in
            let node = graph.nodes[item.offset]
            let entries = GroupKind.allCases.filter(node.cachesKeys).reduce(0) { $0 + (item.element.tokens[$1] ?? 0) }
            return total + 2 * entries * kv * bytesPerValue
        }
    }
}

/// Layers that do the same work on the same token counts: timing one layer of each kind and
/// multiplying by its count gives the time of the whole prefill.
public struct LayerKind: Equatable, Sendable {
    public let node: LayerNode
    public let tokens: [GroupKind: Int]
    public let layers: [Int]
    /// MACs of one layer of this kind.
    public let macs: Int
}

extension Accountant {
    /// The distinct layer kinds, in order of first appearance.
    public var layerKinds: [LayerKind] {
        var kinds: [LayerKind] = []
        for count in prefill() {
            let node = graph.nodes[count.layer]
            if let i = kinds.firstIndex(where: { $0.node == node && $0.tokens == count.tokens }) {
                kinds[i] = LayerKind(node: node, tokens: count.tokens, layers: kinds[i].layers + [count.layer], macs: kinds[i].macs)
            } else {
                kinds.append(LayerKind(node: node, tokens: count.tokens, layers: [count.layer], macs: count.macs))
            }
        }
        return kinds
    }
}
