import Benchmarks
import Kernels
import XCTest

final class VisionPipelineTests: XCTestCase {
    let geometry = VisionGeometry(grid: 4, patch: 3, crops: 5)

    func testViewsAreTheBaseAndTheQuadrants() {
        var image = Canvas(width: 24, height: 24)
        image.fill(x: 12, y: 0, width: 12, height: 12, .black)   // top-right quadrant
        let views = geometry.views(of: image)
        XCTAssertEqual(views.count, 5)
        XCTAssertEqual(views[0], image.downsampled(width: 12, height: 12))
        XCTAssertEqual(views[2], Canvas(width: 12, height: 12).with { $0.fill(x: 0, y: 0, width: 12, height: 12, .black) })
        XCTAssertEqual(views[1], Canvas(width: 12, height: 12), "top-left is blank")
        XCTAssertEqual(VisionGeometry(grid: 4, patch: 3, crops: 1).views(of: image).count, 1)
    }

    func testEncoderIsSeededContextualAndSalient() {
        var image = Canvas(width: 24, height: 24)
        let encoder = VisionEncoder(geometry: geometry, features: 8, seed: 1)
        let (blank, _) = encoder.encode(image)
        XCTAssertEqual(blank.shape, [5 * 16, 8])
        XCTAssertEqual(VisionEncoder(geometry: geometry, features: 8, seed: 1).encode(image).features.array, blank.array, "same seed, same features")
        XCTAssertNotEqual(VisionEncoder(geometry: geometry, features: 8, seed: 2).encode(image).features.array, blank.array)
        // Ink in the top-left patch of the first quadrant (view 1, token 0): its right neighbour
        // changes (context), a far patch does not; the inked patch is the most salient.
        image.fill(x: 0, y: 0, width: 2, height: 2, .black)
        let (inked, saliency) = encoder.encode(image)
        func feature(_ t: Tensor, _ token: Int) -> [Float] { Array(t.array[token * 8..<(token + 1) * 8]) }
        let view1 = 16
        XCTAssertNotEqual(feature(inked, view1 + 0), feature(blank, view1 + 0))
        XCTAssertNotEqual(feature(inked, view1 + 1), feature(blank, view1 + 1), "neighbours mix")
        XCTAssertEqual(feature(inked, view1 + 10), feature(blank, view1 + 10), "far patches do not")
        XCTAssertEqual(saliency.indices.max { saliency[$0] < saliency[$1] }, view1)
    }

    /// The encoder recognises what was drawn: the same ink as a different character, or a shape
    /// in another colour of the same luminance, gives a different feature; labels follow the
    /// pixels through crops and the base view's resize.
    func testEncoderRecognisesGlyphsAndShapes() {
        let encoder = VisionEncoder(geometry: geometry, features: 8, seed: 1)
        var a = Canvas(width: 24, height: 24), o = Canvas(width: 24, height: 24)
        a.text("a", x: 0, y: 0)
        o.text("A", x: 0, y: 0)
        XCTAssertEqual(a, o, "lower case is drawn and recognised as capitals")
        XCTAssertEqual(a.label(x: 2, y: 0), Canvas.label(character: "A"))
        XCTAssertEqual(a.label(x: 0, y: 0), 0, "blank pixels carry no label")
        var b = Canvas(width: 24, height: 24)
        b.text("B", x: 0, y: 0)
        XCTAssertNotEqual(encoder.encode(a).features.array, encoder.encode(b).features.array)
        let views = geometry.views(of: a)
        XCTAssertEqual(views[1].label(x: 2, y: 0), Canvas.label(character: "A"), "the first quadrant is a crop")
        var square = Canvas(width: 24, height: 24)
        square.fill(x: 0, y: 0, width: 24, height: 24, .black, label: Canvas.label(shape: "square", color: .black))
        XCTAssertEqual(geometry.views(of: square)[0].label(x: 3, y: 3), Canvas.label(shape: "square", color: .black), "the base view keeps the label")
        XCTAssertEqual(Canvas.label(color: RGB(0.5, 0.5, 0.5)), 0, "grays are background")
    }

    func testTokenizerSpellsWhatTheFontDraws() {
        let t = Tokenizer()
        let text = "Total: 42% (B) 3.5 kg?"
        XCTAssertEqual(t.decode(t.encode(text)), text)
        for c in BitmapFont.characters { XCTAssertEqual(t.decode(t.encode(String(c))), String(c)) }
        XCTAssertEqual(t.decode([Tokenizer.bos] + t.encode("ab") + [Tokenizer.eos] + t.encode("c")), "<bos>ab")
        XCTAssertEqual(t.vocabularySize, 5 + 80)
    }
}

extension Canvas {
    func with(_ edit: (inout Canvas) -> Void) -> Canvas { var c = self; edit(&c); return c }
}
