import LayerGraph
import XCTest

final class TokenLayoutTests: XCTestCase {
    func testGroupsAndPositions() {
        let l = TokenLayout(grid: 2, crops: 2, system: 3, question: 2, answer: 1)
        XCTAssertEqual(l.count, 3 + 2 * (4 + 1) + 2 + 1)
        XCTAssertEqual(l.positions, (0..<16).map(Int32.init), "canonical packing is positional order")
        XCTAssertEqual(l.tokens[3], LayoutToken(kind: .vision, crop: 0, index: 0, position: 3))
        XCTAssertEqual(l.tokens[7], LayoutToken(kind: .newline, crop: 0, index: 0, position: 7))
        XCTAssertEqual(l.tokens[8], LayoutToken(kind: .vision, crop: 1, index: 0, position: 8))
        XCTAssertEqual(l.visionRows(crop: 1), [8, 9, 10, 11])
        // Proxies: the first positions of the image span, crop by crop in raster order.
        XCTAssertEqual(l.proxyTokens(perCrop: 1).map(\.position), [3, 4])
        XCTAssertEqual(l.proxyTokens(perCrop: 1).map(\.crop), [0, 1])
    }

    func testPackingKeepsTokens() {
        let l = TokenLayout(grid: 2, crops: 1, system: 1, question: 1)
        let p = l.packed(in: [6, 0, 5, 1, 4, 2, 3])
        XCTAssertEqual(Set(p.tokens), Set(l.tokens))
        XCTAssertEqual(p.visionRows(crop: 0), [3, 5, 6, 4])
        XCTAssertEqual(p.rows(of: [.question]), [0])
    }
}

final class VariantTests: XCTestCase {
    func testTextFormParses() throws {
        XCTAssertEqual(try VariantSpec("proxyv(r=4)@from:12").parts,
                       [ScheduledVariant(variant: .proxyV(reduce: 4, width: .quarter), schedule: .from(12))])
        let combined = try VariantSpec(" mask-vv @ layers:0..<4 + skip-vattn(self=false)@layers:5,7 ")
        XCTAssertEqual(combined.parts.map(\.variant), [.maskVisionToVision, .skipVisionAttention(selfUpdate: false)])
        XCTAssertEqual(combined.parts.map(\.schedule), [.range(0..<4), .list([5, 7])])
        XCTAssertEqual(try VariantSpec("skip-vattn-ffn(mlp=0)@ratio:0.25").parts[0].schedule.layers(of: 32), Array(24..<32))
        XCTAssertEqual(try VariantSpec("pyramiddrop(layers=8/16/24,keep=0.5/0.25/0.125)").parts[0].variant,
                       .pyramidDrop(afterLayers: [8, 16, 24], keep: [0.5, 0.25, 0.125]))
    }

    func testSyntaxErrorsPointAtTheOffendingCharacter() {
        func error(_ text: String) -> VariantSyntaxError? {
            do { _ = try VariantSpec(text); return nil } catch { return error as? VariantSyntaxError }
        }
        XCTAssertEqual(error("proxyv(r=4@from:2")?.column, 11)
        XCTAssertEqual(error("proxyv(r=4)@frm:2")?.column, 13)
        XCTAssertEqual(error("proxyv(r=4)@from:x")?.column, 18)
        XCTAssertEqual(error("proxyvv")?.column, 1)
        XCTAssertEqual(error("skip-vattn(self=maybe)")?.column, 12)
        XCTAssertEqual(error("skip-vattn(self=true, size=3)")?.column, 23)
        XCTAssertEqual(error("baseline baseline")?.column, 10)
        XCTAssertEqual(error("fastv(k=2)")?.column, 1, "r is required")
        XCTAssertTrue(error("proxyv(mlp=offical)")!.description.contains("a whole number or 'official' for 'mlp'"))
        let e = error("mask-vv@layers:4..<2")!
        XCTAssertTrue(e.description.contains("expected an end layer not below 4"), e.description)
        XCTAssertTrue(e.description.hasSuffix("\n  mask-vv@layers:4..<2\n                     ^"), e.description)
    }

    func testCompileErrorsSayWhy() {
        func problem(_ text: String, layers: Int = 8, grid: Int = 24) -> String? {
            do { _ = try LayerGraph(spec: VariantSpec(text), layers: layers, hidden: 64, grid: grid); return nil }
            catch { return "\(error)" }
        }
        XCTAssertNil(problem("proxyv(r=4)@from:4"))
        XCTAssertTrue(problem("proxyv(r=5)@from:4")!.contains("does not divide the grid side 24"))
        XCTAssertTrue(problem("mask-vv@layers:2..<9")!.contains("layer 8 is past the last layer (7)"))
        XCTAssertTrue(problem("mask-vv@from:9")!.contains("layer 9 is past the last layer (7)"))
        XCTAssertNil(problem("mask-vv@from:8"), "an empty schedule is allowed")
        XCTAssertTrue(problem("mask-vv@from:2+skip-vattn@layers:5")!.contains("layer 5 is claimed by both mask-vv and skip-vattn"))
        XCTAssertTrue(problem("proxyv@layers:2,4")!.contains("contiguous"))
        XCTAssertTrue(problem("fastv(k=8,r=0.5)")!.contains("after layer 8"))
        XCTAssertTrue(problem("fastv(k=2,r=0.5)+proxyv@from:4")!.contains("cannot be combined"))
    }

    func testNodesFollowThePaper() throws {
        let g = try LayerGraph(spec: VariantSpec("proxyv(r=4)@from:2"), layers: 4, hidden: 64, grid: 24)
        XCTAssertEqual(g.nodes[1], .baseline)
        let n = g.nodes[2]
        XCTAssertFalse(n.queries.contains(.vision), "full vision tokens are not queries")
        XCTAssertTrue(n.keys.isSuperset(of: [.vision, .proxy]), "K/V for all tokens")
        XCTAssertFalse(n.ffn.contains(.vision))
        XCTAssertEqual(n.modules, [.createProxies(.spatial(reduce: 4)), .guidedUpdate(width: 16)])
        XCTAssertEqual(g.nodes[3].modules, [.guidedUpdate(width: 16), .dropProxies])
        // The official code's width: d/2 below a hidden size of 1024 (here 64), d/4 from it.
        let official = try LayerGraph(spec: VariantSpec("proxyv(r=4, mlp=official)@from:2"), layers: 4, hidden: 64, grid: 24)
        XCTAssertEqual(official.nodes[2].modules.last, .guidedUpdate(width: 32))
        let wide = try LayerGraph(spec: VariantSpec("proxyv-learned(n=4, mlp=official)@from:2"), layers: 4, hidden: 1024, grid: 24)
        XCTAssertEqual(wide.nodes[2].modules.last, .guidedUpdate(width: 256))
        let proxy = LayoutToken(kind: .proxy, crop: 0, index: 0, position: 5), full = LayoutToken(kind: .vision, crop: 0, index: 0, position: 5)
        let text = LayoutToken(kind: .question, index: 0, position: 900)
        XCTAssertFalse(n.allows(query: proxy, key: full))
        XCTAssertFalse(n.allows(query: text, key: proxy))
        XCTAssertTrue(n.allows(query: text, key: full))

        let masked = try LayerGraph(spec: VariantSpec("mask-vv@from:0"), layers: 1, hidden: 64, grid: 24).nodes[0]
        let other = LayoutToken(kind: .vision, crop: 0, index: 1, position: 6)
        XCTAssertTrue(masked.allows(query: full, key: full), "a vision query keeps its own key")
        XCTAssertFalse(masked.allows(query: other, key: full))
    }
}
