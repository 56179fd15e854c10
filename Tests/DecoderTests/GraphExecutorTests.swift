import Decoder
import Kernels
import LayerGraph
import TestSupport
import XCTest

/// The layer-graph executor: every variant against its definition, and the properties of the
/// cases × properties table (`variantCases`).
final class GraphExecutorTests: XCTestCase {
    let config = LlamaConfig(hidden: 16, layers: 4, heads: 4, kvHeads: 2, ffn: 24, vocab: 11)
    let layout = TokenLayout(grid: 4, crops: 2, system: 2, question: 3, answer: 2)

    func model(_ variant: String, seed: UInt64 = 1) throws -> GraphModel {
        let decoder = LlamaModel(config: config, seed: seed)
        for p in decoder.parameters where p.decays { for i in 0..<p.value.count { p.value[i] *= 10 } }  // non-trivial mixing
        let graph = try LayerGraph(spec: VariantSpec(variant), layers: config.layers, hidden: config.hidden, grid: layout.grid,
                                   features: caseFeatureWidth)
        let m = GraphModel(decoder: decoder, graph: graph, seed: seed + 100)
        for p in m.modules.parameters where p.decays { for i in 0..<p.value.count { p.value[i] *= 10 } }
        return m
    }

    var inputs: Tensor { randomInputs(rows: layout.count, seed: 7) }

    /// Encoder saliency of every vision token of a layout (VisionZip ranks by it), drawn in
    /// position order: by token, however the layout is packed.
    func saliency(_ layout: TokenLayout, seed: UInt64 = 12) -> [LayoutToken: Float] {
        var rng = SeededGenerator(seed: seed)
        return Dictionary(uniqueKeysWithValues: layout.tokens.filter { $0.kind == .vision }.sorted { $0.position < $1.position }
            .map { ($0, rng.nextUniform()) })
    }

    /// Loss on the question and answer tokens (next-token targets drawn at random).
    var targets: [LayoutToken: Int32] {
        var rng = SeededGenerator(seed: 8)
        return Dictionary(uniqueKeysWithValues: layout.tokens.filter { $0.kind == .question || $0.kind == .answer || $0.kind == .newline }
            .map { ($0, Int32(rng.nextInt(below: config.vocab))) })
    }

    func run(_ m: GraphModel, layout: TokenLayout? = nil, inputs: Tensor? = nil) -> GraphPass {
        let layout = layout ?? self.layout
        let pass = GraphPass(model: m, layout: layout, inputs: inputs ?? self.inputs, targets: targets, saliency: saliency(layout),
                             features: caseFeatures(layout))
        pass.forward()
        return pass
    }

    /// The logits of each token of one sequence, keyed by token (independent of packing).
    func logitsByToken(_ pass: GraphPass, sequence s: Int = 0) -> [LayoutToken: [Float]] {
        let v = config.vocab, o = pass.logitOffsets[s]
        return Dictionary(uniqueKeysWithValues: pass.finalLayouts[s].tokens.enumerated().map { i, t in
            (t, Array(UnsafeBufferPointer(start: pass.logits.data + (o + i) * v, count: v)))
        })
    }

    /// An empty schedule compiles to the baseline's nodes, and runs as the baseline.
    func testEmptySchedulesEqualBaseline() throws {
        let baseline = try model("baseline")
        let base = run(baseline).logits.array
        for v in ["mask-vv@layers:0..<0", "skip-vattn@layers:1..<1", "skip-vattn-ffn@ratio:0", "proxyv(r=2)@layers:3..<3"] {
            let m = try model(v)
            XCTAssertEqual(m.graph.nodes, Array(repeating: LayerNode.baseline, count: config.layers), v)
            XCTAssertEqual(run(m).logits.array, base, accuracy: 1e-5, v)
        }
        let masked = run(try model("mask-vv@from:1")).logits.array
        XCTAssertGreaterThan(zip(masked, base).map { abs($0 - $1) }.max()!, 1e-3, "a real schedule changes the output")
    }

    /// Packing is an implementation detail: permuting a sequence's rows, or packing it after and
    /// before other sequences of other lengths, gives every token the same logits.
    func testPackingDoesNotChangeResults() throws {
        var rng = SeededGenerator(seed: 11)
        var order = Array(0..<layout.count)
        order.shuffle(using: &rng)
        let permutedInputs = Tensor(shape: inputs.shape)
        let original = inputs, d = config.hidden
        for (i, r) in order.enumerated() { (permutedInputs.data + i * d).update(from: original.data + r * d, count: d) }
        let others = [TokenLayout(grid: 4, crops: 1, system: 3, question: 5, answer: 1), TokenLayout(grid: 4, crops: 3, system: 1, question: 2)]
        for v in variants(with: .packing) {
            let m = try model(v)
            let a = logitsByToken(run(m, inputs: original)), b = logitsByToken(run(m, layout: layout.packed(in: order), inputs: permutedInputs))
            XCTAssertEqual(Set(a.keys), Set(b.keys), v)
            for (token, logits) in a { XCTAssertEqual(logits, b[token]!, accuracy: 1e-4, "\(v) \(token), permuted") }
            // Between two other sequences in one batch.
            let batch = [others[0], layout, others[1]].enumerated().map { i, l in
                SequenceInput(layout: l, inputs: l == layout ? original : randomInputs(rows: l.count, seed: 20 + UInt64(i)),
                              targets: l == layout ? targets : [:], saliency: saliency(l, seed: l == layout ? 12 : 30 + UInt64(i)),
                              features: caseFeatures(l, seed: l == layout ? 21 : 40 + UInt64(i)))
            }
            let packed = GraphPass(model: m, sequences: batch)
            packed.forward()
            let c = logitsByToken(packed, sequence: 1)
            XCTAssertEqual(Set(a.keys), Set(c.keys), v)
            for (token, logits) in a { XCTAssertEqual(logits, c[token]!, accuracy: 1e-4, "\(v) \(token), packed with others") }
            XCTAssertEqual(packed.lossSums[1], run(m).lossSum, accuracy: 1e-3, "\(v): the sequence's loss")
        }
    }

    func testSkipVisionAttentionWithoutSelfLeavesVisionUntouched() throws {
        let pass = run(try model("skip-vattn(self=false)@from:1"))
        for l in 1..<config.layers {
            let (tokens, entering, leaving) = pass.attentionBlock(layer: l)
            let d = config.hidden
            for (r, t) in tokens.enumerated() where t.kind == .vision {
                XCTAssertEqual(Array(UnsafeBufferPointer(start: entering.data + r * d, count: d)),
                               Array(UnsafeBufferPointer(start: leaving.data + r * d, count: d)), "layer \(l) \(t)")
            }
            let text = tokens.firstIndex { $0.kind == .question }!
            XCTAssertNotEqual(entering[text * d], leaving[text * d], "text tokens do attend")
        }
        // With self = true a vision token's update is O·(its own value): nonzero, and not attention over others.
        let selfPass = run(try model("skip-vattn@from:1"))
        let (tokens, entering, leaving) = selfPass.attentionBlock(layer: 1)
        let v = tokens.firstIndex { $0.kind == .vision }!
        XCTAssertNotEqual(entering[v * config.hidden], leaving[v * config.hidden])
        XCTAssertFalse(selfPass.attention(layer: 1).queries.contains { $0.kind == .vision }, "vision computes no query")
    }

    /// In ProxyV layers proxies never attend to full vision tokens, and text never attends to proxies.
    func testProxyVMasksOnTheAttentionWeights() throws {
        try checkProxyMasks(run(try model("proxyv(r=2)@from:1")))
        try checkProxyMasks(run(try model("proxyv-learned(n=4)@from:1")))
    }

    func checkProxyMasks(_ pass: GraphPass) throws {
        XCTAssertEqual(pass.finalLayout.tokens.filter { $0.kind == .proxy }.count, 0, "proxies are dropped after the last layer")
        for l in 1..<config.layers {
            let (queries, keys, probs) = pass.attention(layer: l)
            XCTAssertEqual(queries.filter { $0.kind == .proxy }.count, 2 * 4, "2 crops × (4/2)² proxies")
            XCTAssertFalse(queries.contains { $0.kind == .vision })
            var proxyToProxy: Float = 0, textToVision: Float = 0
            for h in 0..<config.heads {
                for (i, q) in queries.enumerated() {
                    for (j, k) in keys.enumerated() {
                        let p = probs[(h * queries.count + i) * keys.count + j]
                        if q.kind == .proxy && k.kind == .vision { XCTAssertEqual(p, 0, "proxy→vision, layer \(l)") }
                        if q.kind != .proxy && k.kind == .proxy { XCTAssertEqual(p, 0, "\(q.kind)→proxy, layer \(l)") }
                        if q.kind == .proxy && k.kind == .proxy { proxyToProxy += p }
                        if q.kind == .question && k.kind == .vision { textToVision += p }
                    }
                }
            }
            XCTAssertGreaterThan(proxyToProxy, 0)
            XCTAssertGreaterThan(textToVision, 0, "text still reads the full vision tokens")
        }
        // Proxy position ids: the first positions of the image span, crop by crop in raster order.
        let proxies = pass.attention(layer: 1).queries.filter { $0.kind == .proxy }
        XCTAssertEqual(proxies.map(\.position), (0..<8).map { Int32(layout.systemLength + $0) })
    }

    /// FastV keeps exactly the requested number of vision tokens: those the last question token
    /// attends to most in the layer, averaged over heads (recomputed here from the kept weights).
    func testFastVKeepsTheMostAttendedVisionTokens() throws {
        let pass = run(try model("fastv(k=1,r=0.75)"))
        let (queries, keys, probs) = pass.attention(layer: 0)
        let ranker = queries.indices.filter { queries[$0].kind == .question }.max { queries[$0].position < queries[$1].position }!
        XCTAssertEqual(queries[ranker].index, layout.questionLength - 1)
        let scores = keys.indices.filter { keys[$0].kind == .vision }.map { j in
            (token: keys[j], score: (0..<config.heads).reduce(Float(0)) { $0 + probs[($1 * queries.count + ranker) * keys.count + j] })
        }
        let expected = Set(scores.sorted { $0.score > $1.score }.prefix(8).map(\.token))
        XCTAssertEqual(scores.count, 32)
        let kept = pass.attention(layer: 1).keys.filter { $0.kind == .vision }
        XCTAssertEqual(kept.count, 8, "1 − 0.75 of 32 vision tokens")
        XCTAssertEqual(Set(kept), expected)
        XCTAssertEqual(pass.finalLayout.tokens.filter { $0.kind != .vision }.count, layout.count - 32, "text and newlines stay")

        let pyramid = run(try model("pyramiddrop(layers=1/2,keep=0.5/0.25)"))
        XCTAssertEqual(pyramid.attention(layer: 1).keys.filter { $0.kind == .vision }.count, 16)
        XCTAssertEqual(pyramid.attention(layer: 2).keys.filter { $0.kind == .vision }.count, 8)
    }

    /// VisionZip keeps the most salient tokens of each crop and merges the rest into contextual
    /// tokens that are the mean of their members.
    func testVisionZipKeepsDominantTokensAndMergesTheRest() throws {
        let saliency = saliency(layout)
        let m = try model("visionzip(dominant=5,contextual=2)")
        let pass = GraphPass(model: m, layout: layout, inputs: inputs, targets: targets, saliency: saliency)
        pass.forward()
        let (tokens, entering) = pass.layerInput(layer: 0)
        let d = config.hidden, original = inputs
        for crop in 0..<2 {
            let kept = tokens.enumerated().filter { $0.element.kind == .vision && $0.element.crop == crop }
            XCTAssertEqual(kept.count, 7, "5 dominant + 2 contextual")
            let all = layout.tokens.enumerated().filter { $0.element.kind == .vision && $0.element.crop == crop }
            let dominant = Set(all.sorted { saliency[$0.element]! > saliency[$1.element]! }.prefix(5).map(\.element))
            XCTAssertTrue(dominant.isSubset(of: Set(kept.map(\.element))))
            // Dominant tokens pass unchanged.
            func row(_ token: LayoutToken) -> [Float] {
                let r = layout.tokens.firstIndex(of: token)!
                return Array(UnsafeBufferPointer(start: original.data + r * d, count: d))
            }
            for (k, token) in kept where dominant.contains(token) {
                XCTAssertEqual(Array(UnsafeBufferPointer(start: entering.data + k * d, count: d)), row(token))
            }
            // The other 11, in raster order: targets at 0 and 11·1/2 = 5; each of the rest joins the
            // target of higher cosine similarity; a contextual token is its group's mean.
            let rest = all.map(\.element).filter { !dominant.contains($0) }.sorted { $0.index < $1.index }
            let targets = [rest[0], rest[5]]
            func cosine(_ a: [Float], _ b: [Float]) -> Float {
                zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
            }
            var groups = targets.map { [row($0)] }
            for token in rest where !targets.contains(token) {
                let similarities = targets.map { cosine(row($0), row(token)) }
                groups[similarities[0] >= similarities[1] ? 0 : 1].append(row(token))
            }
            for (target, group) in zip(targets, groups) {
                let k = kept.first { $0.element == target }!.offset
                let mean = (0..<d).map { j in group.reduce(Float(0)) { $0 + $1[j] } / Float(group.count) }
                XCTAssertEqual(Array(UnsafeBufferPointer(start: entering.data + k * d, count: d)), mean, accuracy: 1e-5)
            }
        }
        XCTAssertEqual(pass.finalLayout.tokens.filter { $0.kind == .vision }.count, 14)
    }

    /// Spatial proxies for r = 4 are the mean of the 2×2 centre tokens of each 4×4 block of their crop.
    func testSpatialProxiesAreTheMeanOfEachBlocksCentre() throws {
        let grid8 = TokenLayout(grid: 8, crops: 2, system: 1, question: 2)
        let decoder = LlamaModel(config: config, seed: 2)
        let graph = try LayerGraph(spec: VariantSpec("proxyv(r=4)@from:1"), layers: config.layers, hidden: config.hidden, grid: 8)
        let pass = GraphPass(model: GraphModel(decoder: decoder, graph: graph, seed: 3), layout: grid8,
                             inputs: randomInputs(rows: grid8.count, seed: 4))
        pass.forward()
        let (tokens, entering) = pass.layerInput(layer: 1)
        let d = config.hidden
        func row(_ kind: GroupKind, crop: Int, index: Int) -> Int {
            tokens.firstIndex { $0.kind == kind && $0.crop == crop && $0.index == index }!
        }
        for crop in 0..<2 {
            for by in 0..<2 { for bx in 0..<2 {
                let proxy = row(.proxy, crop: crop, index: by * 2 + bx)
                let centre = [(1, 1), (1, 2), (2, 1), (2, 2)].map { row(.vision, crop: crop, index: (4 * by + $0.0) * 8 + 4 * bx + $0.1) }
                for j in 0..<d {
                    let mean = centre.reduce(Float(0)) { $0 + entering[$1 * d + j] } / 4
                    XCTAssertEqual(entering[proxy * d + j], mean, accuracy: 1e-5)
                }
            } }
        }
    }

    /// A row of a [rows, d] tensor.
    func row(_ t: Tensor, _ r: Int) -> [Float] {
        let d = t.shape[1]
        return Array(UnsafeBufferPointer(start: t.data + r * d, count: d))
    }

    /// mod: a routed layer runs the top ⌊ρ·n⌋ vision tokens of each sequence by the router's
    /// score s = w·x, and all text; the other vision tokens leave the layer as they entered it and
    /// give no keys. A kept token's FFN update is scaled by its weight g = 1 + 0.2·tanh(s): doubling
    /// w keeps the ranking and scales each kept vision token's update by g(2s)/g(s), text's by 1.
    func testModRunsTheTopVisionTokensByItsRouterAndScalesTheirUpdates() throws {
        let m = try model("mod(keep=0.375)@layers:0..<1")   // 12 of the 32 vision tokens
        let d = config.hidden, x = inputs, w = m.modules.routers[0]!.weight.value
        let score = Dictionary(uniqueKeysWithValues: layout.tokens.enumerated().filter { $0.element.kind == .vision }.map { r, t in
            (t, (0..<d).reduce(Float(0)) { $0 + w[$1] * x[r * d + $1] })
        })
        let kept = Set(score.sorted { $0.value > $1.value }.prefix(12).map(\.key))
        func updates(_ pass: GraphPass) -> [LayoutToken: [Float]] {   // leaving the layer minus leaving its attention block
            let (tokens, _, mid) = pass.attentionBlock(layer: 0)
            let (after, out) = pass.layerInput(layer: 1)
            return Dictionary(uniqueKeysWithValues: tokens.enumerated().map { i, t in
                let o = row(out, after.firstIndex(of: t)!)
                return (t, zip(o, row(mid, i)).map { $0 - $1 })
            })
        }
        let pass = run(m)
        let (queries, keys, _) = pass.attention(layer: 0)
        XCTAssertEqual(Set(queries.filter { $0.kind == .vision }), kept)
        XCTAssertEqual(Set(keys.filter { $0.kind == .vision }), kept, "skipped tokens give no keys")
        XCTAssertEqual(queries.filter { $0.kind != .vision }.count, layout.count - 32, "all text runs the layer")
        let (after, out) = pass.layerInput(layer: 1)
        for (i, t) in after.enumerated() where t.kind == .vision && !kept.contains(t) {
            XCTAssertEqual(row(out, i), row(x, layout.tokens.firstIndex(of: t)!), "\(t) passes the layer unchanged")
        }
        let before = updates(pass)
        XCTAssertEqual(Set(before.keys.filter { $0.kind == .vision }), kept, "only kept vision tokens take the FFN")
        for i in 0..<w.count { w[i] *= 2 }
        let doubled = updates(run(m))
        for (t, u) in before {
            let s = score[t] ?? 0, ratio = t.kind == .vision ? (1 + 0.2 * tanh(2 * s)) / (1 + 0.2 * tanh(s)) : 1
            let scale = u.map { abs($0) }.max()!
            XCTAssertEqual(doubled[t]!, u.map { $0 * ratio }, accuracy: 1e-5 * max(1, scale), "\(t)")
        }
    }

    /// downsample(r=2): before the decoder each 2×2 block of a crop's grid becomes the mean of its
    /// four tokens, in its top-left token's place (and position id); text passes unchanged.
    func testDownsampleMakesEachBlockTheMeanOfItsTokens() throws {
        let pass = run(try model("downsample(r=2)"))
        let (tokens, entering) = pass.layerInput(layer: 0)
        let d = config.hidden, x = inputs
        XCTAssertEqual(tokens.filter { $0.kind == .vision }.count, 2 * 4, "2 crops × (4/2)² tokens")
        for (k, t) in tokens.enumerated() {
            let r = layout.tokens.firstIndex(of: t)!
            guard t.kind == .vision else { XCTAssertEqual(row(entering, k), row(x, r)); continue }
            let (top, left) = (t.index / 4, t.index % 4)
            XCTAssertTrue(top % 2 == 0 && left % 2 == 0, "\(t) is its block's top-left token")
            let members = [(0, 0), (0, 1), (1, 0), (1, 1)].map { dy, dx in
                layout.tokens.firstIndex { $0.kind == .vision && $0.crop == t.crop && $0.index == (top + dy) * 4 + left + dx }!
            }
            XCTAssertEqual(row(entering, k), (0..<d).map { j in members.reduce(Float(0)) { $0 + x[$1 * d + j] } / 4 }, accuracy: 1e-5, "\(t)")
        }
    }

    /// kv-only@from:2: entering each scheduled layer a vision token's state is that layer's own
    /// projector — Linear, GELU (tanh form), Linear — of the token's encoder features; in those
    /// layers vision tokens give keys and values but no queries, and take no FFN.
    func testKVOnlyReprojectsTheFeaturesAtEachScheduledLayer() throws {
        let m = try model("kv-only@from:2")
        let pass = run(m)
        let features = caseFeatures(layout), d = config.hidden, f = caseFeatureWidth
        func gelu(_ v: Float) -> Float { 0.5 * v * (1 + tanh((2 / Float.pi).squareRoot() * (v + 0.044715 * v * v * v))) }
        XCTAssertEqual(Set(m.modules.reprojectors.keys), [2, 3])
        for l in 2..<4 {
            let p = m.modules.reprojectors[l]!
            let (w1, b1, w2, b2) = (p.weight1.value, p.bias1.value, p.weight2.value, p.bias2.value)
            let (tokens, x) = pass.layerInput(layer: l)
            for (k, t) in tokens.enumerated() where t.kind == .vision {
                let feature = (0..<f).map { features[(t.crop * 16 + t.index) * f + $0] }
                let hidden = (0..<d).map { i in gelu(b1[i] + (0..<f).reduce(Float(0)) { $0 + w1[i * f + $1] * feature[$1] }) }
                let expected = (0..<d).map { i in b2[i] + (0..<d).reduce(Float(0)) { $0 + w2[i * d + $1] * hidden[$1] } }
                XCTAssertEqual(row(x, k), expected, accuracy: 1e-5 * max(1, expected.map { abs($0) }.max()!), "layer \(l) \(t)")
            }
            let (queries, keys, _) = pass.attention(layer: l)
            XCTAssertFalse(queries.contains { $0.kind == .vision }, "layer \(l): no vision queries")
            XCTAssertEqual(keys.filter { $0.kind == .vision }.count, 32, "layer \(l): every vision token gives keys")
            XCTAssertFalse(pass.attentionBlock(layer: l).tokens.contains { $0.kind == .vision }, "layer \(l): no vision FFN")
        }
    }

    /// skip-vffn(dropkv=true)@layers:1..<3: in those layers vision tokens take no FFN, the answer
    /// does not attend to them (so training sees what decoding computes), and after the prefill
    /// their keys and values leave the cache; the other layers cache every token. With
    /// dropkv=false only the FFN is skipped and the cache is the baseline's.
    func testSkipVisionFFNDropsVisionKeysFromTheCache() throws {
        let prompt = TokenLayout(grid: 4, crops: 2, system: 2, question: 3), n = prompt.count
        func cacheEntries(_ v: String) throws -> [Int] {
            let pass = GraphPass(model: try model(v), layout: prompt, inputs: randomInputs(rows: n, seed: 7), features: caseFeatures(prompt))
            pass.forward()
            return GraphDecoder(prefill: pass).cacheEntries()
        }
        XCTAssertEqual(try cacheEntries("baseline"), [n, n, n, n])
        XCTAssertEqual(try cacheEntries("skip-vffn@layers:1..<3"), [n, n, n, n])
        XCTAssertEqual(try cacheEntries("skip-vffn(dropkv=true)@layers:1..<3"), [n, n - 32, n - 32, n])
        let pass = run(try model("skip-vffn(dropkv=true)@layers:1..<3"))
        for l in 0..<config.layers {
            let scheduled = (1..<3).contains(l)
            XCTAssertEqual(pass.attentionBlock(layer: l).tokens.contains { $0.kind == .vision }, !scheduled, "layer \(l): vision FFN")
            let (queries, keys, probs) = pass.attention(layer: l)
            var toVision: [GroupKind: Float] = [:]
            for h in 0..<config.heads {
                for (i, q) in queries.enumerated() {
                    for (j, k) in keys.enumerated() where k.kind == .vision {
                        toVision[q.kind, default: 0] += probs[(h * queries.count + i) * keys.count + j]
                    }
                }
            }
            XCTAssertEqual(toVision[.answer]! == 0, scheduled, "layer \(l): answer → vision")
            XCTAssertGreaterThan(toVision[.question]!, 0, "layer \(l): the question still reads the image")
        }
    }

    /// Finite differences of the whole pass's loss, for every variant: decoder weights, the
    /// variant's new modules and the input embeddings (h = 1e-3, |Δ| ≤ 5e-4 + 1e-2·|numeric|).
    func testGradientsOfEveryVariantByFiniteDifferences() throws {
        for v in variants(with: .gradients) {
            let m = try model(v)
            let x = inputs
            m.zeroGradients()
            let features = caseFeatures(layout)
            let pass = GraphPass(model: m, layout: layout, inputs: x, targets: targets, saliency: saliency(layout), features: features)
            pass.forward()
            pass.backward()
            func loss() -> Double {
                Double(GraphPass(model: m, layout: layout, inputs: x, targets: targets, saliency: saliency(layout), features: features).forward())
            }
            let layer1 = m.decoder.layers[1]
            var checked: [(String, Tensor, Tensor)] = [(v + " inputs", x, pass.inputGradient)]
            for p in [layer1.query, layer1.value, layer1.output, layer1.up] + m.modules.parameters {
                checked.append((v + " " + p.name, p.value, p.grad))
            }
            for (name, value, grad) in checked {
                for i in Swift.stride(from: 0, to: value.count, by: max(1, value.count / 6)) {
                    let saved = value[i], h: Float = 1e-3
                    value[i] = saved + h; let plus = loss()
                    value[i] = saved - h; let minus = loss()
                    value[i] = saved
                    let numeric = (plus - minus) / Double(2 * h)
                    XCTAssertLessThanOrEqual(abs(Double(grad[i]) - numeric), 5e-4 + 1e-2 * abs(numeric), "\(name)[\(i)]")
                }
            }
        }
    }
}

func randomInputs(rows: Int, seed: UInt64) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    return Tensor(shape: [rows, 16], std: 1, rng: &rng)
}

func XCTAssertEqual(_ a: [Float], _ b: [Float], accuracy: Float, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    if a.count == b.count, let i = a.indices.first(where: { abs(a[$0] - b[$0]) > accuracy }) {
        XCTFail("\(message): entry \(i): \(a[i]) != \(b[i]) (±\(accuracy))", file: file, line: line)
    }
}

/// Decoding with the KV cache gives the next-token logits of recomputing the whole prefix, for a
/// prompt alone and for a batch of prompts decoded together.
final class GraphDecodingTests: XCTestCase {
    func testCachedDecodingEqualsRecomputingThePrefix() throws {
        let config = LlamaConfig(hidden: 16, layers: 4, heads: 4, kvHeads: 2, ffn: 24, vocab: 11)
        let decoder = LlamaModel(config: config, seed: 5)
        for p in decoder.parameters where p.decays { for i in 0..<p.value.count { p.value[i] *= 10 } }
        let prompt = TokenLayout(grid: 4, crops: 2, system: 2, question: 3)
        let other = TokenLayout(grid: 4, crops: 1, system: 1, question: 5)
        let newTokens: [Int32] = [4, 9, 1]
        func salient(_ layout: TokenLayout) -> [LayoutToken: Float] {
            var rng = SeededGenerator(seed: 13)
            return Dictionary(uniqueKeysWithValues: layout.tokens.filter { $0.kind == .vision }.map { ($0, rng.nextUniform()) })
        }
        for v in variants(with: .decoding) {
            let graph = try LayerGraph(spec: VariantSpec(v), layers: config.layers, hidden: config.hidden, grid: 4, features: caseFeatureWidth)
            let m = GraphModel(decoder: decoder, graph: graph, seed: 6)
            let inputs = randomInputs(rows: prompt.count, seed: 7), otherInputs = randomInputs(rows: other.count, seed: 8)
            let prefill = GraphPass(model: m, layout: prompt, inputs: inputs, saliency: salient(prompt), features: caseFeatures(prompt))
            prefill.forward()
            let cached = GraphDecoder(prefill: prefill)
            // The same prompt decoded in a batch after another one, which takes other tokens.
            let batch = GraphPass(model: m, sequences: [
                SequenceInput(layout: other, inputs: otherInputs, saliency: salient(other), features: caseFeatures(other, seed: 22)),
                SequenceInput(layout: prompt, inputs: inputs, saliency: salient(prompt), features: caseFeatures(prompt))])
            batch.forward()
            let batched = GraphDecoder(prefill: batch)
            XCTAssertEqual(batched.prefillLogits[1], cached.prefillLogits[0], accuracy: 1e-4, "\(v), prefill in a batch")
            if v.hasPrefix("proxyv") {
                let baselineGraph = try LayerGraph(spec: .baseline, layers: config.layers, hidden: config.hidden, grid: 4)
                let base = GraphPass(model: GraphModel(decoder: decoder, graph: baselineGraph, seed: 6), layout: prompt, inputs: inputs)
                base.forward()
                XCTAssertEqual(cached.cacheEntries(), GraphDecoder(prefill: base).cacheEntries(), "no proxy entries in the cache")
            }
            // Recompute: the prompt plus the new tokens as answer tokens, embedded from their ids.
            var rows = inputs.array
            for (i, token) in newTokens.enumerated() {
                let logits = cached.step(token: token)
                let both = batched.step(tokens: [Int32(i + 2), token], sequences: [0, 1])
                rows += Array(UnsafeBufferPointer(start: decoder.embedding.value.data + Int(token) * config.hidden, count: config.hidden))
                let layout = TokenLayout(grid: 4, crops: 2, system: 2, question: 3, answer: i + 1)
                let full = GraphPass(model: m, layout: layout, inputs: Tensor(shape: [layout.count, config.hidden], values: rows),
                                     saliency: salient(layout), features: caseFeatures(layout))
                full.forward()
                let last = full.finalLayout.tokens.firstIndex { $0.kind == .answer && $0.index == i }!
                let expected = Array(UnsafeBufferPointer(start: full.logits.data + last * config.vocab, count: config.vocab))
                XCTAssertEqual(logits, expected, accuracy: 1e-4, "\(v), new token \(i)")
                XCTAssertEqual(both[1], expected, accuracy: 1e-4, "\(v), new token \(i), decoded in a batch")
            }
        }
    }
}
