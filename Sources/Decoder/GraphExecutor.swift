import Dispatch
import Kernels
import LayerGraph

/// A decoder whose layers follow a compiled layer graph, with the modules the variant adds.
public final class GraphModel {
    public let decoder: LlamaModel
    public let graph: LayerGraph
    public let modules: VariantModules

    public init(decoder: LlamaModel, graph: LayerGraph, modules: VariantModules) {
        precondition(graph.nodes.count == decoder.config.layers, "the graph has one node per decoder layer")
        self.decoder = decoder
        self.graph = graph
        self.modules = modules
    }

    /// A fresh variant of `decoder`: the graph's new modules get seeded random weights.
    public convenience init(decoder: LlamaModel, graph: LayerGraph, seed: UInt64) {
        self.init(decoder: decoder, graph: graph, modules: VariantModules(graph: graph, hidden: decoder.config.hidden, seed: seed))
    }

    /// The decoder under the baseline graph: how text-only sequences run.
    public convenience init(baseline decoder: LlamaModel) {
        self.init(decoder: decoder, graph: LayerGraph(spec: .baseline, nodes: Array(repeating: .baseline, count: decoder.config.layers)), seed: 0)
    }

    public var config: LlamaConfig { decoder.config }
    public var parameters: [Parameter] { decoder.parameters + modules.parameters }
    public func zeroGradients() { for p in parameters { p.grad.zero() } }
}

/// One sequence of a batch: its token layout and the input embedding of every token (text
/// embeddings, projected vision features); `targets` gives the next-token target of tokens that
/// carry loss, `saliency` the vision encoder's saliency of vision tokens (VisionZip ranks by
/// it) — by token, so how rows are packed does not matter — and `features` the encoder's features
/// of every crop's vision tokens [crops·G², features], crop by crop in raster order (kv-only
/// re-projects them).
public struct SequenceInput {
    public let layout: TokenLayout
    public let inputs: Tensor
    public let targets: [LayoutToken: Int32]
    public let saliency: [LayoutToken: Float]
    public let features: Tensor?

    public init(layout: TokenLayout, inputs: Tensor, targets: [LayoutToken: Int32] = [:], saliency: [LayoutToken: Float] = [:],
                features: Tensor? = nil) {
        self.layout = layout; self.inputs = inputs; self.targets = targets; self.saliency = saliency; self.features = features
    }
}

/// Sequences packed one after another in the rows of one matrix: sequence s has rows
/// offsets[s]..<offsets[s+1], in the order of its layout's tokens.
struct Packing: Equatable {
    let layouts: [TokenLayout]
    let offsets: [Int]

    init(_ layouts: [TokenLayout]) {
        self.layouts = layouts
        offsets = layouts.reduce(into: [0]) { $0.append($0.last! + $1.count) }
    }

    var count: Int { offsets.last! }
    var tokens: [LayoutToken] { layouts.flatMap(\.tokens) }
    var sequences: Range<Int> { layouts.indices }

    /// Rows of the tokens of the given kinds, sequence by sequence in memory order.
    func rows(of kinds: Set<GroupKind>) -> [Int] {
        layouts.indices.flatMap { s in layouts[s].rows(of: kinds).map { $0 + offsets[s] } }
    }

    /// Where each sequence's part of `rows` (sequence-major) begins, plus the total.
    func starts(of rows: [Int]) -> [Int] {
        var starts = [0], i = 0
        for s in layouts.indices {
            while i < rows.count && rows[i] < offsets[s + 1] { i += 1 }
            starts.append(i)
        }
        return starts
    }

    /// Every crop's vision rows in raster order, crop by crop, sequence by sequence.
    var visionRowsByCrop: [Int] {
        layouts.indices.flatMap { s in (0..<layouts[s].crops).flatMap { layouts[s].visionRows(crop: $0) }.map { $0 + offsets[s] } }
    }

    /// The proxies' rows, crop by crop in raster order, sequence by sequence.
    var proxyRowsByCrop: [Int] {
        layouts.indices.flatMap { s in
            let tokens = layouts[s].tokens
            return layouts[s].rows(of: [.proxy]).sorted { (tokens[$0].crop, tokens[$0].index) < (tokens[$1].crop, tokens[$1].index) }
                .map { $0 + offsets[s] }
        }
    }

    /// The same sequences keeping only the given rows (sequence-major, in order).
    func keeping(rows: [Int]) -> Packing {
        let starts = starts(of: rows)
        return Packing(layouts.indices.map { s in layouts[s].keeping(rows: rows[starts[s]..<starts[s + 1]].map { $0 - offsets[s] }) })
    }
}

/// One layer's forward, as the graph node says, with everything its backward needs.
final class GraphLayerTape {
    let packing: Packing                 // tokens the layer works on (proxies included once created)
    let merged: VisionMerge?             // the vision tokens merged before the layer
    let created: ProxyCreation?          // the proxies made before the layer
    let reprojected: Reprojection?       // the vision states re-made before the layer
    let routing: Routing?                // the tokens that run the layer, if a router chose them
    let x: Tensor                        // the layer's input rows (of the tokens that run it)
    var normed = Tensor(shape: [0]), rstd = Tensor(shape: [0])
    var queryRows: [Int] = [], keyRows: [Int] = [], selfRows: [Int] = [], ffnRows: [Int] = []
    /// Where each sequence's queries and keys begin in `queryRows` and `keyRows`, and its
    /// attention weights in `probs`.
    var queryStarts: [Int] = [], keyStarts: [Int] = [], probStarts: [Int] = []
    var q = Tensor(shape: [0]), k = Tensor(shape: [0]), v = Tensor(shape: [0])
    var normedQ = Tensor(shape: [0]), normedK = Tensor(shape: [0])
    var queryAngles: RotaryAngles?, keyAngles: RotaryAngles?
    var masks: [AttentionMask] = []
    var probs = Tensor(shape: [0]), attended = Tensor(shape: [0]), selfValues = Tensor(shape: [0])
    var mid = Tensor(shape: [0])
    var ffnIn = Tensor(shape: [0]), ffnNormed = Tensor(shape: [0]), ffnRstd = Tensor(shape: [0])
    var gate = Tensor(shape: [0]), up = Tensor(shape: [0]), hidden = Tensor(shape: [0])
    /// Routed layers: the FFN's update before scaling, and which of its rows are kept vision
    /// tokens (index into the FFN rows, index into the routing's vision rows).
    var ffnOut = Tensor(shape: [0]), routedFFNRows: [(row: Int, vision: Int)] = []
    var lightRows: [Int] = [], light: LightMLP.Tape?
    var guidedFull: [Int] = [], guidedProxies: [Int] = [], guided: GuidedUpdate.Tape?
    var outputPacking: Packing
    var keptRows: [Int] = []              // rows of the layer's tokens that leave it (proxies dropped)

    init(packing: Packing, x: Tensor, merged: VisionMerge?, created: ProxyCreation?, reprojected: Reprojection?, routing: Routing?) {
        self.packing = packing; self.x = x; self.merged = merged; self.created = created
        self.reprojected = reprojected; self.routing = routing; outputPacking = packing
    }

    /// The rows leaving the layer and their tokens: the kept rows, and the tokens that skipped a
    /// routed layer as they entered it.
    func output() -> (Tensor, Packing) {
        let y = gather(mid, rows: keptRows)
        guard let routing else { return (y, outputPacking) }
        let out = routing.input.copy()
        scatter(y, rows: routing.activeRows, into: out)
        return (out, routing.packing)
    }
}

/// kv-only's re-projection: the vision rows' hidden states replaced by the layer's projector of
/// the encoder's features.
struct Reprojection {
    let rows: [Int]
    let tape: Projector.Tape
}

/// p-MoD's routing of one layer: the router's weights of the vision rows, and which rows run the
/// layer (the kept vision rows and every other token), in memory order.
struct Routing {
    let packing: Packing        // every token entering the layer
    let input: Tensor           // and their rows
    let visionRows: [Int], visionInput: Tensor
    let scores: Tensor, gates: [Float]
    let kept: Set<Int>          // of visionRows' indices
    let activeRows: [Int]

    init(router: Router, packing: Packing, x: Tensor, keep: Double) {
        self.packing = packing; input = x
        let vision = packing.rows(of: [.vision]), visionInput = gather(x, rows: vision)
        let (gates, scores) = router.forward(visionInput)
        let tokens = packing.tokens, starts = packing.starts(of: vision)
        var kept = Set<Int>()
        for s in packing.sequences {
            // Highest weight first; ties to the earlier position.
            let mine = Array(starts[s]..<starts[s + 1])
            let ranked = mine.sorted { (gates[$0], tokens[vision[$1]].position) > (gates[$1], tokens[vision[$0]].position) }
            kept.formUnion(ranked.prefix(LightModule.routedCount(keep: keep, of: mine.count)))
        }
        let dropped = Set(vision.indices.filter { !kept.contains($0) }.map { vision[$0] })
        (visionRows, self.visionInput, self.gates, self.scores, self.kept) = (vision, visionInput, gates, scores, kept)
        activeRows = tokens.indices.filter { !dropped.contains($0) }
    }

    /// The gradient at the layer's input rows: the active rows' from the layer (`dActive`), the
    /// skipping rows' passed through, and the router's.
    func backward(dActive: Tensor, dOut: Tensor, dGates: [Float], router: Router) -> Tensor {
        let dx = dOut.copy()
        scatter(dActive, rows: activeRows, into: dx)
        scatterAdd(router.backward(dGates: dGates, scores: scores, input: visionInput), rows: visionRows, into: dx)
        return dx
    }
}

/// ProxyV's proxies joining the layer's tokens: each sequence's rows, then its proxies.
struct ProxyCreation {
    let source: ProxySource
    let fullRows: [Int]       // the input rows of the vision tokens the proxies were made from
    let inputRows: [Int]      // where each input row went in the grown matrix
    let proxyRows: [Int]      // where each proxy went (crop by crop, sequence by sequence)
}

/// A forward (and backward) pass of a `GraphModel` over a batch of multimodal sequences packed
/// into one matrix: every linear product, norm, FFN and light module runs over the rows of all
/// sequences at once; attention runs per sequence (and per block of query rows).
public final class GraphPass {
    public let model: GraphModel
    public let sequences: [SequenceInput]
    /// Whether the attention weights are kept for a backward (inference passes skip them,
    /// except in layers that rank tokens by them).
    public let keepsForBackward: Bool
    /// The logits of the tokens leaving the last layer [rows, vocab], sequence by sequence.
    public private(set) var logits = Tensor(shape: [0])
    /// The gradient of the loss with respect to the input embeddings, after `backward()`, in
    /// the rows of the inputs (sequence by sequence).
    public private(set) var inputGradient = Tensor(shape: [0])
    /// Per sequence, after `forward()`: the summed loss and the number of targets it sums over.
    public private(set) var lossSums: [Double] = [], targetCounts: [Int] = []
    /// Wall-clock seconds of each layer in the last `forward()`.
    public private(set) var layerSeconds: [Double] = []

    let inputPacking: Packing
    private(set) var finalPacking: Packing
    private(set) var tapes: [GraphLayerTape] = []
    private var finalHidden = Tensor(shape: [0]), finalNormed = Tensor(shape: [0]), finalRstd = Tensor(shape: [0])
    private var lse = Tensor(shape: [0]), finalTargets: [Int32] = []
    /// How the proxies alive between a ProxyV variant's first and last layer reach the vision
    /// tokens, and (learned proxies) what their creation kept for the backward.
    private var proxyExpansion: ProxyExpansion?
    private var proxyInitialization: ProxyInitializer.Tape?
    private var dSplat: Tensor?

    /// The key/value caches of a decode step, [sequence][layer]: the sequences' new tokens attend
    /// over them (and the keys they bring are added), and the variant's modules, which act on
    /// vision tokens and proxies, do not run.
    let caches: [[KVCache]]?

    public convenience init(model: GraphModel, sequences: [SequenceInput], keepsForBackward: Bool = true) {
        self.init(model: model, sequences: sequences, keepsForBackward: keepsForBackward, caches: nil)
    }

    /// A decode step: `sequences` are the new tokens, `caches` what each sequence's earlier tokens left.
    init(model: GraphModel, sequences: [SequenceInput], keepsForBackward: Bool, caches: [[KVCache]]?) {
        for s in sequences { precondition(s.inputs.shape == [s.layout.count, model.config.hidden], "one input embedding per token") }
        precondition(caches.map { $0.count == sequences.count && !keepsForBackward } ?? true, "a decode step: one cache per sequence, no backward")
        self.model = model
        self.sequences = sequences
        self.keepsForBackward = keepsForBackward
        self.caches = caches
        inputPacking = Packing(sequences.map(\.layout))
        finalPacking = inputPacking
    }

    /// A pass over one sequence.
    public convenience init(model: GraphModel, layout: TokenLayout, inputs: Tensor, targets: [LayoutToken: Int32] = [:],
                            saliency: [LayoutToken: Float] = [:], features: Tensor? = nil, keepsForBackward: Bool = true) {
        self.init(model: model, sequences: [SequenceInput(layout: layout, inputs: inputs, targets: targets, saliency: saliency, features: features)],
                  keepsForBackward: keepsForBackward)
    }

    var config: LlamaConfig { model.config }
    public var lossSum: Double { lossSums.reduce(0, +) }
    public var countedTargets: Int { targetCounts.reduce(0, +) }
    /// The tokens leaving the last layer, per sequence.
    public var finalLayouts: [TokenLayout] { finalPacking.layouts }
    public var finalLayout: TokenLayout { finalPacking.layouts[0] }
    /// The first row of each sequence's logits, plus the total.
    public var logitOffsets: [Int] { finalPacking.offsets }
    /// The first row of each sequence's inputs (and of `inputGradient`), plus the total.
    public var inputOffsets: [Int] { inputPacking.offsets }

    /// Runs every layer; returns the mean loss over the tokens with targets (0 if none).
    @discardableResult
    public func forward() -> Float {
        tapes = []
        layerSeconds = []
        let d = config.hidden
        var x = Tensor(shape: [inputPacking.count, d]), packing = inputPacking
        for (s, sequence) in sequences.enumerated() {
            (x.data + inputPacking.offsets[s] * d).update(from: sequence.inputs.data, count: sequence.inputs.count)
        }
        for (l, node) in model.graph.nodes.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            let tape = layerForward(l, node: node, x: x, packing: packing)
            tapes.append(tape)
            (x, packing) = tape.output()
            layerSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        finalPacking = packing
        finalHidden = x
        (finalNormed, finalRstd) = x.rmsNorm(model.decoder.finalNorm, eps: config.normEps)
        logits = finalNormed.linear(model.decoder.head)
        finalTargets = packing.layouts.indices.flatMap { s in packing.layouts[s].tokens.map { sequences[s].targets[$0] ?? -1 } }
        lse = Tensor(shape: [packing.count])
        (lossSums, targetCounts) = ([], [])
        for s in packing.sequences {
            let o = packing.offsets[s], n = packing.offsets[s + 1] - o
            let (sum, count) = CrossEntropy.forward(logits: logits.data + o * config.vocab, targets: Array(finalTargets[o..<o + n]),
                                                    lse: lse.data + o, vocab: config.vocab)
            lossSums.append(sum); targetCounts.append(count)
        }
        return countedTargets > 0 ? Float(lossSum / Double(countedTargets)) : 0
    }

    /// Accumulates the gradient of lossSum / normalizer (default: the mean loss over the batch's
    /// targets) into every parameter and into `inputGradient`.
    public func backward(normalizer: Float? = nil) {
        let normalizer = normalizer ?? Float(countedTargets)
        backward(lossScales: Array(repeating: normalizer > 0 ? 1 / normalizer : 0, count: sequences.count))
    }

    /// Accumulates the gradient of Σₛ lossScales[s] · (sequence s's summed loss).
    public func backward(lossScales: [Float]) {
        precondition(keepsForBackward, "this pass was made for inference")
        precondition(lossScales.count == sequences.count, "one loss scale per sequence")
        let dLogits = Tensor(shape: logits.shape), vocab = config.vocab
        for s in finalPacking.sequences where lossScales[s] != 0 {
            let o = finalPacking.offsets[s], n = finalPacking.offsets[s + 1] - o
            CrossEntropy.backward(logits: logits.data + o * vocab, targets: Array(finalTargets[o..<o + n]), lse: lse.data + o,
                                  dLogits: dLogits.data + o * vocab, vocab: vocab, scale: lossScales[s])
        }
        var dx = dLogits.linearBackward(model.decoder.head, input: finalNormed)
            .rmsNormBackward(model.decoder.finalNorm, input: finalHidden, rstd: finalRstd)
        for (l, tape) in tapes.enumerated().reversed() {
            dx = layerBackward(l, tape: tape, dOut: dx)
        }
        inputGradient = dx
    }

    // MARK: inspection (tests)

    /// The attention weights of a layer in one sequence: its query tokens, key tokens and [heads, queries, keys].
    public func attention(layer l: Int, sequence s: Int = 0) -> (queries: [LayoutToken], keys: [LayoutToken], probs: Tensor) {
        let t = tapes[l], tokens = t.packing.tokens
        let queries = t.queryRows[t.queryStarts[s]..<t.queryStarts[s + 1]].map { tokens[$0] }
        let keys = t.keyRows[t.keyStarts[s]..<t.keyStarts[s + 1]].map { tokens[$0] }
        let probs = Tensor(shape: [config.heads, queries.count, keys.count])
        if t.probs.count > 0 { probs.data.update(from: t.probs.data + t.probStarts[s], count: probs.count) }
        return (queries, keys, probs)
    }

    /// A layer's tokens in one sequence with their hidden states entering it.
    public func layerInput(layer l: Int, sequence s: Int = 0) -> (tokens: [LayoutToken], x: Tensor) {
        let t = tapes[l], o = t.packing.offsets[s]
        return (t.packing.layouts[s].tokens, gather(t.x, rows: Array(o..<t.packing.offsets[s + 1])))
    }

    /// The tokens of one sequence that take a layer's FFN, with their hidden states entering the
    /// layer and leaving its attention block (the FFN's input).
    public func attentionBlock(layer l: Int, sequence s: Int = 0) -> (tokens: [LayoutToken], entering: Tensor, leaving: Tensor) {
        let t = tapes[l], starts = t.packing.starts(of: t.ffnRows), tokens = t.packing.tokens
        let rows = Array(t.ffnRows[starts[s]..<starts[s + 1]])
        return (rows.map { tokens[$0] }, gather(t.x, rows: rows), gather(t.ffnIn, rows: Array(starts[s]..<starts[s + 1])))
    }

    /// The keys and values a layer computed (after RoPE) in one sequence, with their tokens: what a KV cache holds.
    func keysAndValues(layer l: Int, sequence s: Int) -> (tokens: [LayoutToken], k: Tensor, v: Tensor) {
        let t = tapes[l], tokens = t.packing.tokens, rows = Array(t.keyStarts[s]..<t.keyStarts[s + 1])
        return (rows.map { tokens[t.keyRows[$0]] }, gather(t.k, rows: rows), gather(t.v, rows: rows))
    }

    // MARK: one layer

    private func layerForward(_ l: Int, node: LayerNode, x input: Tensor, packing inputPacking: Packing) -> GraphLayerTape {
        let c = config, layer = model.decoder.layers[l], d = c.hidden, hl = c.headLayout
        // Before the layer: VisionZip or downsampling merges vision tokens; ProxyV makes proxies
        // from the layer's input vision tokens, and they join their sequence's tokens; kv-only
        // re-makes the vision states; a router chooses the vision tokens that run the layer.
        var packing = inputPacking, x = input, merged: VisionMerge?, created: ProxyCreation?
        var reprojected: Reprojection?, routing: Routing?
        let modules = caches == nil ? node.modules : []
        for module in modules {
            switch module {
            case let .zipVision(dominant, contextual):
                merged = VisionMerge(zipping: packing, x: x, saliency: sequences.map(\.saliency), dominant: dominant, contextual: contextual)
            case let .poolVision(r): merged = VisionMerge(pooling: packing, reduce: r)
            default: continue
            }
            x = merged!.forward(x)
            packing = packing.keeping(rows: merged!.keptRows)
        }
        for case let .createProxies(source) in modules {
            (x, packing, created) = createProxies(source, x: x, packing: packing)
        }
        for case .reprojectVision in modules {
            x = x.copy()
            reprojected = reproject(l, x: x, packing: packing)
        }
        for case let .route(keep) in modules {
            routing = Routing(router: model.modules.routers[l]!, packing: packing, x: x, keep: keep)
            x = gather(x, rows: routing!.activeRows)
            packing = packing.keeping(rows: routing!.activeRows)
        }
        let t = GraphLayerTape(packing: packing, x: x, merged: merged, created: created, reprojected: reprojected, routing: routing)
        let tokens = packing.tokens
        t.queryRows = packing.rows(of: node.queries)
        t.keyRows = packing.rows(of: node.keys.union(node.selfOnly))
        t.selfRows = packing.rows(of: node.selfOnly)
        t.ffnRows = packing.rows(of: node.ffn)
        t.queryStarts = packing.starts(of: t.queryRows)
        t.keyStarts = packing.starts(of: t.keyRows)
        (t.normed, t.rstd) = x.rmsNorm(layer.attentionNorm, eps: c.normEps)

        // Attention: queries over keys, causal by position, with the node's masked pairs.
        t.normedQ = gather(t.normed, rows: t.queryRows)
        t.normedK = gather(t.normed, rows: t.keyRows)
        t.q = t.normedQ.linear(layer.query)
        t.k = t.normedK.linear(layer.key)
        t.v = t.normedK.linear(layer.value)
        // A layer attending as the one before it, over the same tokens, shares its angles and masks.
        if let before = tapes.last, before.packing == packing, before.queryRows == t.queryRows, before.keyRows == t.keyRows,
           model.graph.nodes[l - 1].keys == node.keys, model.graph.nodes[l - 1].masked == node.masked {
            (t.queryAngles, t.keyAngles, t.masks) = (before.queryAngles, before.keyAngles, before.masks)
        } else {
            let rope = Rope(headDim: c.headDim, theta: c.ropeTheta)
            t.queryAngles = rope.angles(for: t.queryRows.map { tokens[$0].position })
            t.keyAngles = rope.angles(for: t.keyRows.map { tokens[$0].position })
            t.masks = caches != nil ? [] : packing.sequences.map { s in
                node.attentionMask(queries: t.queryRows[t.queryStarts[s]..<t.queryStarts[s + 1]].map { tokens[$0] },
                                   keys: t.keyRows[t.keyStarts[s]..<t.keyStarts[s + 1]].map { tokens[$0] })
            }
        }
        t.queryAngles!.rotate(t.q.data, heads: c.heads)
        t.keyAngles!.rotate(t.k.data, heads: c.kvHeads)
        t.attended = Tensor(shape: [t.queryRows.count, d])
        if let caches {
            attendOverCaches(caches.map { $0[l] }, tape: t, node: node)
        } else {
            let ranks = node.modules.contains { if case .pruneVision = $0 { return true } else { return false } }
            t.probStarts = t.masks.reduce(into: [0]) { $0.append($0.last! + c.heads * $1.queries * $1.keys) }
            t.probs = Tensor(shape: [keepsForBackward || ranks ? t.probStarts.last! : 0])
            for (s, mask) in t.masks.enumerated() {
                let qo = t.queryStarts[s], ko = t.keyStarts[s]
                Attention.forward(q: t.q.data + qo * d, k: t.k.data + ko * hl.kvWidth, v: t.v.data + ko * hl.kvWidth,
                                  out: t.attended.data + qo * d, probs: t.probs.count > 0 ? t.probs.data + t.probStarts[s] : nil,
                                  mask: mask, layout: hl)
            }
        }
        t.mid = x.copy()
        scatterAdd(t.attended.linear(layer.output), rows: t.queryRows, into: t.mid)

        // Self-only tokens: the attention update is O·(own value), each head reading its kv head.
        if !t.selfRows.isEmpty {
            let keyIndex = Dictionary(uniqueKeysWithValues: t.keyRows.enumerated().map { ($1, $0) })
            t.selfValues = Tensor(shape: [t.selfRows.count, d])
            for (i, r) in t.selfRows.enumerated() {
                for h in 0..<c.heads {
                    (t.selfValues.data + i * d + h * c.headDim).update(
                        from: t.v.data + keyIndex[r]! * hl.kvWidth + hl.kvHead(of: h) * c.headDim, count: c.headDim)
                }
            }
            scatterAdd(t.selfValues.linear(layer.output), rows: t.selfRows, into: t.mid)
        }

        // FFN on its groups.
        if !t.ffnRows.isEmpty {
            t.ffnIn = gather(t.mid, rows: t.ffnRows)
            (t.ffnNormed, t.ffnRstd) = t.ffnIn.rmsNorm(layer.ffnNorm, eps: c.normEps)
            let n = t.ffnRows.count
            t.gate = Tensor(shape: [n, c.ffn]); t.up = Tensor(shape: [n, c.ffn]); t.hidden = Tensor(shape: [n, c.ffn])
            let y = Tensor(shape: [n, d])
            SwiGLU.forward(x: t.ffnNormed.data, weights: layer.ffnWeights, y: y.data,
                           saved: .init(gate: t.gate.data, up: t.up.data, hidden: t.hidden.data), rows: n, dim: d, ffn: c.ffn)
            if let routing {
                // A kept vision token's FFN update is scaled by its router weight (p-MoD).
                let visionIndex = Dictionary(uniqueKeysWithValues: routing.visionRows.enumerated().map { ($1, $0) })
                t.routedFFNRows = t.ffnRows.indices.compactMap { i in visionIndex[routing.activeRows[t.ffnRows[i]]].map { (i, $0) } }
                t.ffnOut = y.copy()
                for (i, v) in t.routedFFNRows { for j in 0..<d { y[i * d + j] *= routing.gates[v] } }
            }
            scatterAdd(y, rows: t.ffnRows, into: t.mid)
        }

        // Light modules on the vision tokens (t.mid is now the layer's output).
        for module in modules {
            switch module {
            case .visionMLP:
                t.lightRows = packing.rows(of: [.vision])
                let (y, tape) = model.modules.lightMLPs[l]!.forward(gather(t.mid, rows: t.lightRows), eps: c.normEps)
                scatter(y, rows: t.lightRows, into: t.mid)
                t.light = tape
            case .guidedUpdate:
                t.guidedFull = packing.visionRowsByCrop
                t.guidedProxies = packing.proxyRowsByCrop
                let crops = packing.layouts.reduce(0) { $0 + $1.crops }
                let (y, tape) = model.modules.guidedUpdates[l]!.forward(
                    full: gather(t.mid, rows: t.guidedFull), proxies: gather(t.mid, rows: t.guidedProxies),
                    tokensPerCrop: t.guidedFull.count / crops, expansion: proxyExpansion!, eps: c.normEps)
                scatter(y, rows: t.guidedFull, into: t.mid)
                t.guided = tape
            case .createProxies, .dropProxies, .pruneVision, .zipVision, .poolVision, .reprojectVision, .route:
                break
            }
        }
        // Tokens leave after the layer: proxies after the last ProxyV layer, pruned vision tokens.
        var leaving = Set<Int>()
        for module in modules {
            switch module {
            case .dropProxies: leaving.formUnion(packing.rows(of: [.proxy]))
            case let .pruneVision(keep): for s in packing.sequences { leaving.formUnion(prunedVisionRows(t, sequence: s, keep: keep)) }
            default: break
            }
        }
        t.keptRows = tokens.indices.filter { !leaving.contains($0) }
        t.outputPacking = packing.keeping(rows: t.keptRows)
        return t
    }

    /// A decode step's attention: each sequence's keys that its cache keeps join it, and its
    /// queries attend over the cache.
    private func attendOverCaches(_ caches: [KVCache], tape t: GraphLayerTape, node: LayerNode) {
        let hl = config.headLayout, tokens = t.packing.tokens
        for (s, cache) in caches.enumerated() {
            for i in t.keyStarts[s]..<t.keyStarts[s + 1] where KVCache.keeps(tokens[t.keyRows[i]], in: node) {
                cache.append(tokens[t.keyRows[i]], k: t.k.data + i * hl.kvWidth, v: t.v.data + i * hl.kvWidth)
            }
            let queries = t.queryRows[t.queryStarts[s]..<t.queryStarts[s + 1]].map { tokens[$0] }
            cache.attend(q: t.q.data + t.queryStarts[s] * hl.queryWidth, out: t.attended.data + t.queryStarts[s] * hl.queryWidth,
                         mask: node.attentionMask(queries: queries, keys: cache.tokens), layout: hl)
        }
    }

    /// kv-only: the vision rows of `x` replaced by layer l's projector of their encoder features.
    private func reproject(_ l: Int, x: Tensor, packing: Packing) -> Reprojection {
        let projector = model.modules.reprojectors[l]!, width = projector.weight1.shape[1]
        let rows = packing.rows(of: [.vision]), tokens = packing.tokens, starts = packing.starts(of: rows)
        let features = Tensor(shape: [rows.count, width])
        for s in packing.sequences {
            guard let source = sequences[s].features else { preconditionFailure("kv-only needs the encoder's features of every sequence") }
            let perCrop = packing.layouts[s].grid * packing.layouts[s].grid
            for i in starts[s]..<starts[s + 1] {
                let token = tokens[rows[i]]
                (features.data + i * width).update(from: source.data + (token.crop * perCrop + token.index) * width, count: width)
            }
        }
        let (y, tape) = projector.forward(features)
        scatter(y, rows: rows, into: x)
        return Reprojection(rows: rows, tape: tape)
    }

    /// ProxyV's proxies made from each crop's vision rows, appended to their sequence's rows.
    private func createProxies(_ source: ProxySource, x: Tensor, packing: Packing) -> (Tensor, Packing, ProxyCreation) {
        let full = packing.visionRowsByCrop, crops = packing.layouts.reduce(0) { $0 + $1.crops }
        let proxies: Tensor, perCrop: Int
        switch source {
        case let .spatial(r):
            let grid = packing.layouts[0].grid
            proxies = SpatialProxies.forward(full: gather(x, rows: full), grid: grid, reduce: r)
            perCrop = (grid / r) * (grid / r)
            proxyExpansion = .nearest(reduce: r, grid: grid)
        case let .learned(n):
            let made = model.modules.proxyInitializer!.forward(full: gather(x, rows: full), tokensPerCrop: full.count / crops)
            (proxies, perCrop) = (made.proxies, n)
            proxyExpansion = .splat(made.splat)
            proxyInitialization = made.tape
            dSplat = Tensor(shape: made.splat.shape)
        }
        let grown = Packing(packing.layouts.map { $0.appending($0.proxyTokens(perCrop: perCrop)) })
        var inputRows: [Int] = [], proxyRows: [Int] = []
        for s in packing.sequences {
            let n = packing.offsets[s + 1] - packing.offsets[s], o = grown.offsets[s]
            inputRows += (o..<o + n)
            proxyRows += (o + n..<grown.offsets[s + 1])
        }
        let grownX = Tensor(shape: [grown.count, config.hidden])
        scatter(x, rows: inputRows, into: grownX)
        scatter(proxies, rows: proxyRows, into: grownX)
        return (grownX, grown, ProxyCreation(source: source, fullRows: full, inputRows: inputRows, proxyRows: proxyRows))
    }

    /// The vision rows of one sequence to drop so that `keep` of its prompt's vision tokens
    /// remain: all but those its last question token attended to most in this layer (mean over
    /// heads; ties go to the earlier position).
    private func prunedVisionRows(_ t: GraphLayerTape, sequence s: Int, keep: Double) -> [Int] {
        let target = Int((keep * Double(sequences[s].layout.rows(of: [.vision]).count)).rounded())
        let tokens = t.packing.tokens
        let queryRows = Array(t.queryRows[t.queryStarts[s]..<t.queryStarts[s + 1]]), keyRows = Array(t.keyRows[t.keyStarts[s]..<t.keyStarts[s + 1]])
        let vision = keyRows.indices.filter { tokens[keyRows[$0]].kind == .vision }
        guard vision.count > target else { return [] }
        let questions = queryRows.indices.filter { tokens[queryRows[$0]].kind == .question }
        guard let ranker = questions.max(by: { tokens[queryRows[$0]].position < tokens[queryRows[$1]].position }) else {
            preconditionFailure("pruning ranks vision tokens by the last question token, and there is none")
        }
        let nq = queryRows.count, nk = keyRows.count, probs = t.probs.data + t.probStarts[s]
        func score(_ j: Int) -> Float { (0..<config.heads).reduce(0) { $0 + probs[($1 * nq + ranker) * nk + j] } }
        let ranked = vision.map { (j: $0, score: score($0), position: tokens[keyRows[$0]].position) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.position < $1.position }
        return ranked.dropFirst(target).map { keyRows[$0.j] }
    }

    private func layerBackward(_ l: Int, tape t: GraphLayerTape, dOut: Tensor) -> Tensor {
        let c = config, layer = model.decoder.layers[l], d = c.hidden, hl = c.headLayout
        // dMid: the gradient at the layer's output rows, proxies (if dropped) receiving none.
        let dMid = Tensor(shape: t.mid.shape)
        scatter(t.routing.map { gather(dOut, rows: $0.activeRows) } ?? dOut, rows: t.keptRows, into: dMid)
        var dGates = [Float](repeating: 0, count: t.routing?.visionRows.count ?? 0)
        if let tape = t.guided {
            let (dFull, dProxies) = model.modules.guidedUpdates[l]!.backward(gather(dMid, rows: t.guidedFull), tape: tape, dSplat: dSplat)
            scatter(dFull, rows: t.guidedFull, into: dMid)
            scatterAdd(dProxies, rows: t.guidedProxies, into: dMid)
        }
        if let tape = t.light {
            scatter(model.modules.lightMLPs[l]!.backward(gather(dMid, rows: t.lightRows), tape: tape), rows: t.lightRows, into: dMid)
        }
        // FFN: out = mid + FFN(norm(mid)) on its rows.
        if !t.ffnRows.isEmpty {
            let n = t.ffnRows.count
            let dy = gather(dMid, rows: t.ffnRows), dNormed = Tensor(shape: [n, d])
            if let routing = t.routing {
                // out = mid + g·FFN: g's gradient is ⟨dOut, FFN⟩, the FFN's is g·dOut.
                for (i, v) in t.routedFFNRows {
                    var dot: Float = 0
                    for j in 0..<d { dot += dy[i * d + j] * t.ffnOut[i * d + j]; dy[i * d + j] *= routing.gates[v] }
                    dGates[v] = dot
                }
            }
            let scratch = (Tensor(shape: [n, c.ffn]), Tensor(shape: [n, c.ffn]))
            withExtendedLifetime(scratch) {
                SwiGLU.backward(dy: dy.data, x: t.ffnNormed.data, weights: layer.ffnWeights,
                                saved: .init(gate: t.gate.data, up: t.up.data, hidden: t.hidden.data), dx: dNormed.data,
                                dGate: layer.gate.grad.data, dUp: layer.up.grad.data, dDown: layer.down.grad.data,
                                scratch: (scratch.0.data, scratch.1.data), rows: n, dim: d, ffn: c.ffn)
            }
            scatterAdd(dNormed.rmsNormBackward(layer.ffnNorm, input: t.ffnIn, rstd: t.ffnRstd), rows: t.ffnRows, into: dMid)
        }
        // Attention: mid = x + O·attention (queries) + O·own value (self-only).
        let dx = dMid.copy()
        let dq = Tensor(shape: t.q.shape), dk = Tensor(shape: t.k.shape), dv = Tensor(shape: t.v.shape)
        if !t.selfRows.isEmpty {
            let dSelf = gather(dMid, rows: t.selfRows).linearBackward(layer.output, input: t.selfValues)
            let keyIndex = Dictionary(uniqueKeysWithValues: t.keyRows.enumerated().map { ($1, $0) })
            for (i, r) in t.selfRows.enumerated() {
                for h in 0..<c.heads {
                    let src = dSelf.data + i * d + h * c.headDim, dst = dv.data + keyIndex[r]! * hl.kvWidth + hl.kvHead(of: h) * c.headDim
                    for j in 0..<c.headDim { dst[j] += src[j] }
                }
            }
        }
        let dAttended = gather(dMid, rows: t.queryRows).linearBackward(layer.output, input: t.attended)
        for (s, mask) in t.masks.enumerated() {
            let qo = t.queryStarts[s] * d, ko = t.keyStarts[s] * hl.kvWidth
            Attention.backward(dOut: dAttended.data + qo, q: t.q.data + qo, k: t.k.data + ko, v: t.v.data + ko,
                               probs: t.probs.data + t.probStarts[s], dq: dq.data + qo, dk: dk.data + ko, dv: dv.data + ko,
                               mask: mask, layout: hl)
        }
        t.queryAngles!.rotateBack(dq.data, heads: c.heads)
        t.keyAngles!.rotateBack(dk.data, heads: c.kvHeads)
        let dNormed = Tensor(shape: t.normed.shape)
        scatterAdd(dq.linearBackward(layer.query, input: t.normedQ), rows: t.queryRows, into: dNormed)
        let dNormedK = dk.linearBackward(layer.key, input: t.normedK)
        dv.linearBackward(layer.value, input: t.normedK, into: dNormedK)
        scatterAdd(dNormedK, rows: t.keyRows, into: dNormed)
        dNormed.rmsNormBackward(layer.attentionNorm, input: t.x, rstd: t.rstd, into: dx)
        // Back through what came before the layer: the router, the re-projection (its rows' input
        // states were replaced), the proxies (to the vision tokens they came from) and merging.
        var dInput = dx
        if let routing = t.routing {
            dInput = routing.backward(dActive: dx, dOut: dOut, dGates: dGates, router: model.modules.routers[l]!)
        }
        if let r = t.reprojected {
            _ = model.modules.reprojectors[l]!.backward(gather(dInput, rows: r.rows), tape: r.tape)
            scatter(Tensor(shape: [r.rows.count, d]), rows: r.rows, into: dInput)
        }
        if let created = t.created { dInput = backwardThroughProxyCreation(dInput, created: created) }
        return t.merged?.backward(dInput) ?? dInput
    }

    private func backwardThroughProxyCreation(_ dx: Tensor, created: ProxyCreation) -> Tensor {
        let d = config.hidden
        let dInput = gather(dx, rows: created.inputRows), dProxies = gather(dx, rows: created.proxyRows)
        let dFull: Tensor
        switch created.source {
        case let .spatial(r):
            dFull = Tensor(shape: [created.fullRows.count, d])
            SpatialProxies.backward(dProxies, grid: inputPacking.layouts[0].grid, reduce: r, into: dFull)
        case .learned:
            dFull = model.modules.proxyInitializer!.backward(dProxies: dProxies, dSplat: dSplat!, tape: proxyInitialization!)
        }
        scatterAdd(dFull, rows: created.fullRows, into: dInput)
        return dInput
    }
}
