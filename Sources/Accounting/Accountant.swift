import Decoder
import LayerGraph

/// How attention pairs and the parts outside the decoder layers are counted.
public enum CountingConvention: String, CaseIterable, Sendable {
    /// The paper's (inferred, see README): matrix products of the decoder layers only, attention
    /// dense over every (query, key) pair of a layer, the LM head not counted.
    case paper
}

/// Multiply-accumulates of one named operation of a layer; FLOPs are twice that.
public struct OperationCount: Equatable, Sendable {
    public let name: String
    public let macs: Int
    public var flops: Int { 2 * macs }
}

/// The operations of one decoder layer (or, at layer −1, the products outside the layers).
public struct LayerCount: Equatable, Sendable {
    public let layer: Int
    public let tokens: [GroupKind: Int]
    public let operations: [OperationCount]
    public var macs: Int { operations.reduce(0) { $0 + $1.macs } }
    public var flops: Int { 2 * macs }
}

/// FLOPs, MACs, parameters and KV-cache bytes of a compiled layer graph over a token layout,
/// read from the same nodes the executor runs.
public struct Accountant {
    public let config: LlamaConfig
    public let graph: LayerGraph
    public let layout: TokenLayout

    public init(config: LlamaConfig, graph: LayerGraph, layout: TokenLayout) {
        self.config = config; self.graph = graph; self.layout = layout
    }

    /// Prefill counts, layer by layer, following the token groups through the graph: VisionZip
    /// and pruning shrink the vision group, ProxyV adds and later drops proxies.
    public func prefill(convention: CountingConvention = .paper) -> [LayerCount] {
        let d = config.hidden, kv = config.kvHeads * config.headDim, f = config.ffn
        var counts = Dictionary(grouping: layout.tokens, by: \.kind).mapValues(\.count)
        let originalVision = counts[.vision] ?? 0
        var perCropProxies = 0
        var layers: [LayerCount] = []
        for (l, node) in graph.nodes.enumerated() {
            func count(_ kinds: Set<GroupKind>) -> Int { kinds.reduce(0) { $0 + (counts[$1] ?? 0) } }
            for module in node.modules {
                switch module {
                case let .zipVision(dominant, contextual):
                    counts[.vision] = layout.crops * min(dominant + contextual, layout.grid * layout.grid)
                case let .createProxies(.spatial(r)):
                    perCropProxies = (layout.grid / r) * (layout.grid / r)
                    counts[.proxy] = layout.crops * perCropProxies
                case let .createProxies(.learned(n)):
                    perCropProxies = n
                    counts[.proxy] = layout.crops * n
                default: break
                }
            }
            let q = count(node.queries), k = count(node.keys), s = count(node.selfOnly), ffnTokens = count(node.ffn)
            let vision = counts[.vision] ?? 0, proxies = counts[.proxy] ?? 0
            var ops = [
                OperationCount(name: "q_proj", macs: q * d * d),
                OperationCount(name: "k_proj", macs: count(node.keys.union(node.selfOnly)) * d * kv),
                OperationCount(name: "v_proj", macs: count(node.keys.union(node.selfOnly)) * d * kv),
                OperationCount(name: "attention_scores", macs: q * k * d),
                OperationCount(name: "attention_values", macs: q * k * d),
                OperationCount(name: "o_proj", macs: (q + s) * d * d),
                OperationCount(name: "ffn", macs: 3 * ffnTokens * d * f),
            ]
            for module in node.modules {
                switch module {
                case let .visionMLP(w):
                    ops.append(OperationCount(name: "light_mlp", macs: vision * (d * w + w * w + w * d)))
                case let .guidedUpdate(w):
                    let splat = perCropProxies > 0 && isLearned ? vision * perCropProxies * w : 0
                    ops.append(OperationCount(name: "guided_update",
                                              macs: vision * d * w + proxies * d * w + splat + vision * 2 * w * w + vision * w * d))
                case let .createProxies(.learned(n)):
                    let h = d / 4, m = vision / max(layout.crops, 1)
                    ops.append(OperationCount(name: "proxy_init", macs: vision * d * h + layout.crops * (2 * n * m * h + n * m * d)))
                default: break
                }
            }
            layers.append(LayerCount(layer: l, tokens: counts.filter { $0.value > 0 }, operations: ops))
            for module in node.modules {
                switch module {
                case .dropProxies: counts[.proxy] = 0
                case let .pruneVision(keep):
                    counts[.vision] = min(counts[.vision] ?? 0, Int((keep * Double(originalVision)).rounded()))
                default: break
                }
            }
        }
        return layers
    }

    private var isLearned: Bool {
        graph.nodes.contains { $0.modules.contains { if case .createProxies(.learned) = $0 { return true } else { return false } } }
    }

    /// Weights of the decoder and of the variant's modules, by module.
    public var parameters: [(module: String, count: Int)] {
        let d = config.hidden, kv = config.kvHeads * config.headDim, f = config.ffn
        var rows: [(String, Int)] = [("embedding", config.vocab * d),
                                     ("decoder layers", config.layers * (2 * d + 2 * d * d + 2 * d * kv + 3 * d * f)),
                                     ("final norm", d)]
        if !config.tiedEmbeddings { rows.append(("lm head", config.vocab * d)) }
        var light = 0, guided = 0, initializer = 0
        for node in graph.nodes {
            for module in node.modules {
                switch module {
                case let .visionMLP(w): light += d + 2 * d * w + w * w
                case let .guidedUpdate(w): guided += 3 * d * w + 2 * w * w + d
                case let .createProxies(.learned(n)): initializer += (d / 4) * d + n * (d / 4)
                default: break
                }
            }
        }
        if light > 0 { rows.append(("light MLPs", light)) }
        if guided > 0 { rows.append(("guided vision updates", guided)) }
        if initializer > 0 { rows.append(("proxy initializer", initializer)) }
        return rows
    }

    /// Bytes of the KV cache after the prefill: per layer, K and V of every token later tokens may
    /// attend to (proxies are dropped after the prefill), at `bytesPerValue` each.
    public func kvCacheBytes(bytesPerValue: Int) -> Int {
        let kv = config.kvHeads * config.headDim
        return prefill().enumerated().reduce(0) { total, item in
            let node = graph.nodes[item.offset]
            let entries = node.keys.subtracting([.proxy]).reduce(0) { $0 + (item.element.tokens[$1] ?? 0) }
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
