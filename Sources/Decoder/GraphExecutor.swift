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

    public var config: LlamaConfig { decoder.config }
    public var parameters: [Parameter] { decoder.parameters + modules.parameters }
    public func zeroGradients() { for p in parameters { p.grad.zero() } }
}

/// One layer's forward, as the graph node says, with everything its backward needs.
final class GraphLayerTape {
    let layout: TokenLayout              // tokens the layer works on (proxies included once created)
    let zipped: VisionZip?               // the vision tokens merged before the layer
    let created: (full: [Int], source: ProxySource)?   // rows of the vision tokens the proxies were made from
    let x: Tensor                        // the layer's input rows (proxy rows appended when created)
    var normed = Tensor(shape: [0]), rstd = Tensor(shape: [0])
    var queryRows: [Int] = [], keyRows: [Int] = [], selfRows: [Int] = [], ffnRows: [Int] = []
    var q = Tensor(shape: [0]), k = Tensor(shape: [0]), v = Tensor(shape: [0])
    var normedQ = Tensor(shape: [0]), normedK = Tensor(shape: [0])
    var queryAngles: RotaryAngles?, keyAngles: RotaryAngles?
    var mask = AttentionMask(queries: 0, keys: 0) { _, _ in false }
    var probs = Tensor(shape: [0]), attended = Tensor(shape: [0]), selfValues = Tensor(shape: [0])
    var mid = Tensor(shape: [0])
    /// The residual stream after the attention block, before the FFN (kept for inspection).
    var afterAttention = Tensor(shape: [0])
    var ffnIn = Tensor(shape: [0]), ffnNormed = Tensor(shape: [0]), ffnRstd = Tensor(shape: [0])
    var gate = Tensor(shape: [0]), up = Tensor(shape: [0]), hidden = Tensor(shape: [0])
    var lightRows: [Int] = [], light: LightMLP.Tape?
    var guidedFull: [Int] = [], guidedProxies: [Int] = [], guided: GuidedUpdate.Tape?
    var outputLayout: TokenLayout
    var keptRows: [Int] = []              // rows of the layer's tokens that leave it (proxies dropped)

    init(layout: TokenLayout, x: Tensor, zipped: VisionZip?, created: (full: [Int], source: ProxySource)?) {
        self.layout = layout; self.x = x; self.zipped = zipped; self.created = created; outputLayout = layout
    }
}

/// A forward (and backward) pass of a `GraphModel` over one multimodal sequence, given as a token
/// layout and the input embedding of every token (text embeddings and projected vision features).
public final class GraphPass {
    public let model: GraphModel
    public let layout: TokenLayout
    /// The tokens leaving the last layer, and their logits [rows, vocab].
    public private(set) var finalLayout: TokenLayout
    public private(set) var logits = Tensor(shape: [0])
    /// The gradient of the loss with respect to the input embeddings, after `backward()`.
    public private(set) var inputGradient = Tensor(shape: [0])
    public private(set) var lossSum = 0.0
    public private(set) var countedTargets = 0
    /// Wall-clock seconds of each layer in the last `forward()`.
    public private(set) var layerSeconds: [Double] = []
    /// Whether the attention weights are kept for a backward (inference passes skip them,
    /// except in layers that rank tokens by them).
    public let keepsForBackward: Bool

    let inputs: Tensor
    let targets: [LayoutToken: Int32]
    let saliency: [LayoutToken: Float]
    private(set) var tapes: [GraphLayerTape] = []
    private var finalHidden = Tensor(shape: [0]), finalNormed = Tensor(shape: [0]), finalRstd = Tensor(shape: [0])
    private var lse = Tensor(shape: [0]), finalTargets: [Int32] = []
    /// How the proxies alive between a ProxyV variant's first and last layer reach the vision
    /// tokens, and (learned proxies) what their creation kept for the backward.
    private var proxyExpansion: ProxyExpansion?
    private var proxyInitialization: ProxyInitializer.Tape?
    private var dSplat: Tensor?

    /// `targets` gives the next-token target of tokens that carry loss, and `saliency` the vision
    /// encoder's saliency of vision tokens (VisionZip ranks by it) — by token, so packing does not matter.
    public init(model: GraphModel, layout: TokenLayout, inputs: Tensor, targets: [LayoutToken: Int32] = [:],
                saliency: [LayoutToken: Float] = [:], keepsForBackward: Bool = true) {
        self.keepsForBackward = keepsForBackward
        precondition(inputs.shape == [layout.count, model.config.hidden], "one input embedding per token")
        self.model = model
        self.layout = layout
        self.inputs = inputs
        self.targets = targets
        self.saliency = saliency
        finalLayout = layout
    }

    var config: LlamaConfig { model.config }

    /// Runs every layer; returns the mean loss over the tokens with targets (0 if none).
    @discardableResult
    public func forward() -> Float {
        tapes = []
        layerSeconds = []
        var x = inputs, current = layout
        for (l, node) in model.graph.nodes.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            let tape = layerForward(l, node: node, x: x, layout: current)
            tapes.append(tape)
            x = gather(tape.mid, rows: tape.keptRows)
            current = tape.outputLayout
            layerSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        finalLayout = current
        finalHidden = x
        (finalNormed, finalRstd) = x.rmsNorm(model.decoder.finalNorm, eps: config.normEps)
        logits = finalNormed.linear(model.decoder.head)
        finalTargets = current.tokens.map { targets[$0] ?? -1 }
        lse = Tensor(shape: [current.count])
        (lossSum, countedTargets) = CrossEntropy.forward(logits: logits.data, targets: finalTargets, lse: lse.data, vocab: config.vocab)
        return countedTargets > 0 ? Float(lossSum / Double(countedTargets)) : 0
    }

    /// Accumulates the gradient of lossSum / normalizer (default: the mean loss) into every
    /// parameter and into `inputGradient`.
    public func backward(normalizer: Float? = nil) {
        precondition(keepsForBackward, "this pass was made for inference")
        let normalizer = normalizer ?? Float(countedTargets)
        let dLogits = Tensor(shape: logits.shape)
        if normalizer > 0 {
            CrossEntropy.backward(logits: logits.data, targets: finalTargets, lse: lse.data, dLogits: dLogits.data,
                                  vocab: config.vocab, scale: 1 / normalizer)
        }
        var dx = dLogits.linearBackward(model.decoder.head, input: finalNormed)
            .rmsNormBackward(model.decoder.finalNorm, input: finalHidden, rstd: finalRstd)
        for (l, tape) in tapes.enumerated().reversed() {
            dx = layerBackward(l, tape: tape, dOut: dx)
        }
        inputGradient = dx
    }

    /// The attention weights of a layer: its query tokens, key tokens and [heads, queries, keys].
    public func attention(layer l: Int) -> (queries: [LayoutToken], keys: [LayoutToken], probs: Tensor) {
        let t = tapes[l]
        return (t.queryRows.map { t.layout.tokens[$0] }, t.keyRows.map { t.layout.tokens[$0] }, t.probs)
    }

    /// A layer's tokens with their hidden states entering it and leaving its attention block
    /// (the latter kept by passes made for a backward).
    public func attentionBlock(layer l: Int) -> (tokens: [LayoutToken], entering: Tensor, leaving: Tensor) {
        (tapes[l].layout.tokens, tapes[l].x, tapes[l].afterAttention)
    }

    /// The keys and values a layer computed (after RoPE), with their tokens: what a KV cache holds.
    func keysAndValues(layer l: Int) -> (tokens: [LayoutToken], k: Tensor, v: Tensor) {
        let t = tapes[l]
        return (t.keyRows.map { t.layout.tokens[$0] }, t.k, t.v)
    }

    // MARK: one layer

    private func layerForward(_ l: Int, node: LayerNode, x input: Tensor, layout inputLayout: TokenLayout) -> GraphLayerTape {
        let c = config, layer = model.decoder.layers[l], d = c.hidden, hl = c.headLayout
        // Before the layer: VisionZip merges vision tokens; ProxyV makes proxies from the layer's
        // input vision tokens, and they join the layer's tokens.
        var layout = inputLayout, x = input, created: (full: [Int], source: ProxySource)?, zipped: VisionZip?
        for case let .zipVision(dominant, contextual) in node.modules {
            let zip = VisionZip(layout: layout, x: x, saliency: saliency, dominant: dominant, contextual: contextual)
            x = zip.forward(x)
            layout = layout.keeping(rows: zip.keptRows)
            zipped = zip
        }
        for case let .createProxies(source) in node.modules {
            let full = (0..<layout.crops).flatMap { layout.visionRows(crop: $0) }
            let proxies: Tensor, perCrop: Int
            switch source {
            case let .spatial(r):
                proxies = SpatialProxies.forward(full: gather(x, rows: full), grid: layout.grid, reduce: r)
                perCrop = (layout.grid / r) * (layout.grid / r)
                proxyExpansion = .nearest(reduce: r, grid: layout.grid)
            case let .learned(n):
                let made = model.modules.proxyInitializer!.forward(full: gather(x, rows: full), tokensPerCrop: full.count / layout.crops)
                (proxies, perCrop) = (made.proxies, n)
                proxyExpansion = .splat(made.splat)
                proxyInitialization = made.tape
                dSplat = Tensor(shape: made.splat.shape)
            }
            layout = layout.appending(layout.proxyTokens(perCrop: perCrop))
            let grown = Tensor(shape: [layout.count, d])
            grown.data.update(from: x.data, count: x.count)
            (grown.data + x.count).update(from: proxies.data, count: proxies.count)
            x = grown
            created = (full, source)
        }
        let t = GraphLayerTape(layout: layout, x: x, zipped: zipped, created: created)
        let tokens = layout.tokens
        t.queryRows = layout.rows(of: node.queries)
        t.keyRows = layout.rows(of: node.keys.union(node.selfOnly))
        t.selfRows = layout.rows(of: node.selfOnly)
        t.ffnRows = layout.rows(of: node.ffn)
        (t.normed, t.rstd) = x.rmsNorm(layer.attentionNorm, eps: c.normEps)

        // Attention: queries over keys, causal by position, with the node's masked pairs.
        let rope = Rope(headDim: c.headDim, theta: c.ropeTheta)
        t.normedQ = gather(t.normed, rows: t.queryRows)
        t.normedK = gather(t.normed, rows: t.keyRows)
        t.q = t.normedQ.linear(layer.query)
        t.k = t.normedK.linear(layer.key)
        t.v = t.normedK.linear(layer.value)
        // A layer attending as the one before it, over the same tokens, shares its angles and mask.
        if let before = tapes.last, before.layout == layout, before.queryRows == t.queryRows, before.keyRows == t.keyRows,
           model.graph.nodes[l - 1].keys == node.keys, model.graph.nodes[l - 1].masked == node.masked {
            (t.queryAngles, t.keyAngles, t.mask) = (before.queryAngles, before.keyAngles, before.mask)
        } else {
            t.queryAngles = rope.angles(for: t.queryRows.map { tokens[$0].position })
            t.keyAngles = rope.angles(for: t.keyRows.map { tokens[$0].position })
            t.mask = node.attentionMask(queries: t.queryRows.map { tokens[$0] }, keys: t.keyRows.map { tokens[$0] })
        }
        t.queryAngles!.rotate(t.q.data, heads: c.heads)
        t.keyAngles!.rotate(t.k.data, heads: c.kvHeads)
        let ranks = node.modules.contains { if case .pruneVision = $0 { return true } else { return false } }
        t.probs = Tensor(shape: [keepsForBackward || ranks ? c.heads * t.queryRows.count * t.keyRows.count : 0])
        t.attended = Tensor(shape: [t.queryRows.count, d])
        Attention.forward(q: t.q.data, k: t.k.data, v: t.v.data, out: t.attended.data, probs: t.probs.count > 0 ? t.probs.data : nil,
                          mask: t.mask, layout: hl)
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

        if keepsForBackward { t.afterAttention = t.mid.copy() }   // inspection only; inference passes skip the copy

        // FFN on its groups.
        if !t.ffnRows.isEmpty {
            t.ffnIn = gather(t.mid, rows: t.ffnRows)
            (t.ffnNormed, t.ffnRstd) = t.ffnIn.rmsNorm(layer.ffnNorm, eps: c.normEps)
            let n = t.ffnRows.count
            t.gate = Tensor(shape: [n, c.ffn]); t.up = Tensor(shape: [n, c.ffn]); t.hidden = Tensor(shape: [n, c.ffn])
            let y = Tensor(shape: [n, d])
            SwiGLU.forward(x: t.ffnNormed.data, weights: layer.ffnWeights, y: y.data,
                           saved: .init(gate: t.gate.data, up: t.up.data, hidden: t.hidden.data), rows: n, dim: d, ffn: c.ffn)
            scatterAdd(y, rows: t.ffnRows, into: t.mid)
        }

        // Light modules on the vision tokens (t.mid is now the layer's output).
        for module in node.modules {
            switch module {
            case .visionMLP:
                t.lightRows = layout.rows(of: [.vision])
                let (y, tape) = model.modules.lightMLPs[l]!.forward(gather(t.mid, rows: t.lightRows), eps: c.normEps)
                scatter(y, rows: t.lightRows, into: t.mid)
                t.light = tape
            case .guidedUpdate:
                t.guidedFull = (0..<layout.crops).flatMap { layout.visionRows(crop: $0) }
                t.guidedProxies = proxyRows(layout)
                let (y, tape) = model.modules.guidedUpdates[l]!.forward(
                    full: gather(t.mid, rows: t.guidedFull), proxies: gather(t.mid, rows: t.guidedProxies),
                    tokensPerCrop: t.guidedFull.count / layout.crops, expansion: proxyExpansion!, eps: c.normEps)
                scatter(y, rows: t.guidedFull, into: t.mid)
                t.guided = tape
            case .createProxies, .dropProxies, .pruneVision, .zipVision:
                break
            }
        }
        // Tokens leave after the layer: proxies after the last ProxyV layer, pruned vision tokens.
        var leaving = Set<Int>()
        for module in node.modules {
            switch module {
            case .dropProxies: leaving.formUnion(layout.rows(of: [.proxy]))
            case let .pruneVision(keep): leaving.formUnion(prunedVisionRows(t, keep: keep))
            default: break
            }
        }
        t.keptRows = layout.tokens.indices.filter { !leaving.contains($0) }
        t.outputLayout = layout.keeping(rows: t.keptRows)
        return t
    }

    /// The vision rows to drop so that `keep` of the prompt's vision tokens remain: all but those
    /// the last question token attended to most in this layer (mean over heads; ties go to the
    /// earlier position).
    private func prunedVisionRows(_ t: GraphLayerTape, keep: Double) -> [Int] {
        let target = Int((keep * Double(layout.rows(of: [.vision]).count)).rounded())
        let tokens = t.layout.tokens
        let vision = t.keyRows.indices.filter { tokens[t.keyRows[$0]].kind == .vision }
        guard vision.count > target else { return [] }
        let questions = t.queryRows.indices.filter { tokens[t.queryRows[$0]].kind == .question }
        guard let ranker = questions.max(by: { tokens[t.queryRows[$0]].position < tokens[t.queryRows[$1]].position }) else {
            preconditionFailure("pruning ranks vision tokens by the last question token, and there is none")
        }
        let nq = t.queryRows.count, nk = t.keyRows.count
        func score(_ j: Int) -> Float { (0..<config.heads).reduce(0) { $0 + t.probs[($1 * nq + ranker) * nk + j] } }
        let ranked = vision.map { (j: $0, score: score($0), position: tokens[t.keyRows[$0]].position) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.position < $1.position }
        return ranked.dropFirst(target).map { t.keyRows[$0.j] }
    }

    /// Rows of the proxies, crop by crop in raster order.
    private func proxyRows(_ layout: TokenLayout) -> [Int] {
        layout.rows(of: [.proxy]).sorted { (layout.tokens[$0].crop, layout.tokens[$0].index) < (layout.tokens[$1].crop, layout.tokens[$1].index) }
    }

    private func layerBackward(_ l: Int, tape t: GraphLayerTape, dOut: Tensor) -> Tensor {
        let c = config, layer = model.decoder.layers[l], d = c.hidden, hl = c.headLayout
        // dMid: the gradient at the layer's output rows, proxies (if dropped) receiving none.
        let dMid = Tensor(shape: t.mid.shape)
        scatter(dOut, rows: t.keptRows, into: dMid)
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
        Attention.backward(dOut: dAttended.data, q: t.q.data, k: t.k.data, v: t.v.data, probs: t.probs.data,
                           dq: dq.data, dk: dk.data, dv: dv.data, mask: t.mask, layout: hl)
        t.queryAngles!.rotateBack(dq.data, heads: c.heads)
        t.keyAngles!.rotateBack(dk.data, heads: c.kvHeads)
        let dNormed = Tensor(shape: t.normed.shape)
        scatterAdd(dq.linearBackward(layer.query, input: t.normedQ), rows: t.queryRows, into: dNormed)
        let dNormedK = dk.linearBackward(layer.key, input: t.normedK)
        dv.linearBackward(layer.value, input: t.normedK, into: dNormedK)
        scatterAdd(dNormedK, rows: t.keyRows, into: dNormed)
        dNormed.rmsNormBackward(layer.attentionNorm, input: t.x, rstd: t.rstd, into: dx)
        // Proxies made in this layer pass their gradient back to the vision tokens they came from,
        // and tokens merged before it to the tokens they were merged from.
        let dInput = t.created.map { created in backwardThroughProxyCreation(dx, tape: t, created: created) } ?? dx
        return t.zipped?.backward(dInput) ?? dInput
    }

    private func backwardThroughProxyCreation(_ dx: Tensor, tape t: GraphLayerTape, created: (full: [Int], source: ProxySource)) -> Tensor {
        let d = config.hidden
        let inputCount = t.x.shape[0] - t.layout.rows(of: [.proxy]).count
        let dInput = Tensor(shape: [inputCount, d])
        dInput.data.update(from: dx.data, count: inputCount * d)
        let dProxies = gather(dx, rows: proxyRows(t.layout))
        let dFull: Tensor
        switch created.source {
        case let .spatial(r):
            dFull = Tensor(shape: [created.full.count, d])
            SpatialProxies.backward(dProxies, grid: t.layout.grid, reduce: r, into: dFull)
        case .learned:
            dFull = model.modules.proxyInitializer!.backward(dProxies: dProxies, dSplat: dSplat!, tape: proxyInitialization!)
        }
        scatterAdd(dFull, rows: created.full, into: dInput)
        return dInput
    }
}

