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
        XCTAssertEqual(VisionGeometry(grid: 4, patch: 3, crops: 2).views(of: image), Array(views.prefix(2)))
        // One crop: the image is the view, at full detail.
        let single = VisionGeometry(grid: 8, patch: 3, crops: 1)
        XCTAssertEqual(single.imageSide, 24)
        XCTAssertEqual(single.views(of: image), [image])
    }

    func testEncoderIsSeededContextualAndSalient() {
        var image = Canvas(width: 24, height: 24)
        let encoder = VisionEncoder(geometry: geometry, features: 8, seed: 1)
        let (blank, _) = encoder.encode(image)
        XCTAssertEqual(blank.shape, [5 * 16, 8])
        // The seed decides the weights: the same seed gives the same fingerprint (what run ids
        // include), another seed other weights and other features.
        XCTAssertEqual(VisionEncoder(geometry: geometry, features: 8, seed: 1).fingerprint, encoder.fingerprint)
        XCTAssertNotEqual(VisionEncoder(geometry: geometry, features: 8, seed: 2).fingerprint, encoder.fingerprint)
        XCTAssertGreaterThan(zip(VisionEncoder(geometry: geometry, features: 8, seed: 2).encode(image).features.array, blank.array)
            .map { abs($0 - $1) }.max()!, 0.1)
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

    /// Features carry their patch's place in the view: on a blank image every patch of a view
    /// differs, and the same place in two views (each as blank) gives the same feature.
    func testEncoderFeaturesCarryTheirPlaceInTheView() {
        let encoder = VisionEncoder(geometry: geometry, features: 8, seed: 1), blank = encoder.encode(Canvas(width: 24, height: 24)).features.array
        let patches = (0..<5 * 16).map { Array(blank[$0 * 8..<($0 + 1) * 8]) }
        XCTAssertEqual(Set(patches[0..<16].map { $0.map(\.bitPattern) }).count, 16)
        XCTAssertEqual(Array(patches[0..<16]), Array(patches[16..<32]))
    }

    /// The encoder recognises what was drawn: the same ink as a different character, or a shape
    /// in another colour of the same luminance, gives a different feature; a character is
    /// recognised once, in the patch holding its centre; marks and labels follow the pixels
    /// through crops and the base view's resize; neighbours enter by direction.
    func testEncoderRecognisesGlyphsAndShapes() {
        let encoder = VisionEncoder(geometry: geometry, features: 8, seed: 1)
        var a = Canvas(width: 24, height: 24), o = Canvas(width: 24, height: 24)
        a.text("a", x: 0, y: 0)
        o.text("A", x: 0, y: 0)
        XCTAssertEqual(a, o, "lower case is drawn and recognised as capitals")
        XCTAssertEqual(a.marks, [Canvas.Mark(label: Canvas.label(character: "A"), x: 2, y: 3)], "one mark, at the glyph's centre")
        XCTAssertEqual(a.label(x: 2, y: 0), 0, "ink is no region")
        var b = Canvas(width: 24, height: 24)
        b.text("B", x: 0, y: 0)
        XCTAssertNotEqual(encoder.encode(a).features.array, encoder.encode(b).features.array)
        let views = geometry.views(of: a)
        XCTAssertEqual(views[1].marks, a.marks, "the first quadrant is a crop")
        XCTAssertEqual(views[0].marks, [Canvas.Mark(label: Canvas.label(character: "A"), x: 1, y: 1)], "the base view halves coordinates")
        XCTAssertEqual(views[2].marks, [], "other quadrants do not see it")
        // A mark alone changes its patch (and, by context, its neighbours) in the views that see it.
        var marked = Canvas(width: 24, height: 24)
        marked.mark(Canvas.label(character: "A"), x: 4, y: 1)
        let (m, blank) = (encoder.encode(marked).features.array, encoder.encode(Canvas(width: 24, height: 24)).features.array)
        func changed(_ token: Int) -> Bool { m[token * 8..<(token + 1) * 8] != blank[token * 8..<(token + 1) * 8] }
        XCTAssertEqual((0..<16).filter(changed), [0, 1, 4], "base view: the mark is in patch 0")
        XCTAssertEqual((16..<32).filter(changed), [16, 17, 18, 21], "first quadrant: the mark is in patch 1")
        XCTAssertEqual((32..<80).filter(changed), [])
        // Context tells left from right: the same mark just left or just right of a patch changes it differently.
        var toLeft = Canvas(width: 24, height: 24), toRight = Canvas(width: 24, height: 24)
        toLeft.mark(Canvas.label(character: "A"), x: 1, y: 1)
        toRight.mark(Canvas.label(character: "A"), x: 7, y: 1)
        let (fromLeft, fromRight) = (encoder.encode(toLeft).features.array, encoder.encode(toRight).features.array)
        XCTAssertNotEqual(fromLeft[17 * 8..<18 * 8], blank[17 * 8..<18 * 8])
        XCTAssertNotEqual(fromLeft[17 * 8..<18 * 8], fromRight[17 * 8..<18 * 8])
        var square = Canvas(width: 24, height: 24)
        square.fill(x: 0, y: 0, width: 24, height: 24, .black, label: Canvas.label(shape: "square", color: .black))
        XCTAssertEqual(geometry.views(of: square)[0].label(x: 3, y: 3), Canvas.label(shape: "square", color: .black), "the base view keeps the label")
        XCTAssertEqual(Canvas.label(color: RGB(0.5, 0.5, 0.5)), 0, "grays are background")
    }

    /// A coloured shape is recognised by its kind and its colour apart: changing a red object from
    /// square to circle changes its features as it does a blue one's.
    func testShapesAreRecognisedByKindAndColourApart() {
        let encoder = VisionEncoder(geometry: geometry, features: 8, seed: 3)
        func features(_ shape: String, _ colour: RGB) -> [Float] {
            var c = Canvas(width: 24, height: 24)
            c.fill(x: 0, y: 0, width: 24, height: 24, colour, label: Canvas.label(shape: shape, color: colour))
            return encoder.encode(c).features.array
        }
        let (red, blue) = (RGB.named[0].color, RGB.named[1].color)
        let redChange = zip(features("circle", red), features("square", red)).map { $0 - $1 }
        let blueChange = zip(features("circle", blue), features("square", blue)).map { $0 - $1 }
        XCTAssertGreaterThan(redChange.map(abs).max()!, 0.1)
        for (r, b) in zip(redChange, blueChange) { XCTAssertEqual(r, b, accuracy: 1e-4) }
        XCTAssertNotEqual(Canvas.label(shape: "circle", color: red), Canvas.label(shape: "circle", color: blue))
    }

    func testTokenizerSpellsWhatTheFontDraws() {
        let t = Tokenizer()
        let text = "Total: 42% (B) 3.5 kg?"
        XCTAssertEqual(t.decode(t.encode(text)), text)
        for c in BitmapFont.characters { XCTAssertEqual(t.decode(t.encode(String(c))), String(c)) }
        XCTAssertEqual(t.decode([Tokenizer.bos] + t.encode("ab") + [Tokenizer.eos] + t.encode("c")), "<bos>ab")
        XCTAssertEqual(t.decode(t.encode("a  b,  c ")), "a  b,  c ", "runs of spaces survive")
        XCTAssertEqual(t.vocabularySize, 5 + 80 + Tokenizer.words.count)
    }

    /// The questions' words are one token each (with the space before them); numbers, words
    /// read from images and words the suite never uses are spelled.
    func testTaskWordsAreSingleTokens() {
        let t = Tokenizer()
        XCTAssertEqual(t.encode("What is the total?").count, 5)
        XCTAssertEqual(t.encode(" Is there a red circle in the image?").count, 9)
        XCTAssertEqual(t.encode("1234").count, 4, "digits are spelled one by one")
        XCTAssertEqual(t.encode("STOP").count, 4, "words drawn in images are read glyph by glyph")
        XCTAssertEqual(t.encode(" Zebra").count, 6, "an unseen word is spelled, its space too")
        XCTAssertLessThan(t.vocabularySize, 300, "a small vocabulary: the questions' words")
    }
}

extension Canvas {
    func with(_ edit: (inout Canvas) -> Void) -> Canvas { var c = self; edit(&c); return c }
}
