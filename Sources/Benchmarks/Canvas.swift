import Foundation

/// An RGB colour with channels in [0, 1].
public struct RGB: Equatable, Hashable, Sendable {
    public let r, g, b: Float
    public init(_ r: Float, _ g: Float, _ b: Float) { self.r = r; self.g = g; self.b = b }

    /// The named colours the tasks ask about.
    public static let named: [(name: String, color: RGB)] = [
        ("red", RGB(0.85, 0.1, 0.1)), ("green", RGB(0.1, 0.65, 0.2)), ("blue", RGB(0.15, 0.25, 0.85)),
        ("yellow", RGB(0.95, 0.85, 0.1)), ("purple", RGB(0.55, 0.2, 0.7)), ("orange", RGB(0.95, 0.55, 0.1)),
        ("black", RGB(0, 0, 0)), ("gray", RGB(0.5, 0.5, 0.5)),
    ]
    public static let white = RGB(1, 1, 1), black = RGB(0, 0, 0)
    /// The colour's name if it is one of the named colours.
    public var name: String? { RGB.named.first { $0.color == self }?.name }
    var luminance: Float { 0.299 * r + 0.587 * g + 0.114 * b }
}

/// A raster image that tasks draw into: rectangles, discs, triangles, lines and bitmap text.
public struct Canvas: Equatable, Sendable {
    public let width, height: Int
    /// Row-major RGB, three floats a pixel.
    public private(set) var pixels: [Float]
    /// What drew each pixel (0: nothing recognisable, text's ink included): a coloured shape or a
    /// colour. The vision-encoder stand-in "recognises" regions by these; see `Canvas.label`.
    public private(set) var labels: [UInt32]
    /// The things drawn that a pretrained encoder would recognise as such — each character and
    /// each shape — at the pixel of their centre (the encoder sees them in the patch holding it).
    public private(set) var marks: [Mark] = []
    /// The image in words, in drawing order: each text drawn, each shape described, each named
    /// colour filled. Language pretraining reads this in place of the image (see `Prompt`).
    public private(set) var caption: [String] = []

    public struct Mark: Equatable, Sendable {
        public let label: UInt32
        public let x, y: Int
        public init(label: UInt32, x: Int, y: Int) { self.label = label; self.x = x; self.y = y }
    }

    public init(width: Int, height: Int, background: RGB = .white) {
        self.width = width; self.height = height
        let rgb = [background.r, background.g, background.b]
        pixels = (0..<3 * width * height).map { rgb[$0 % 3] }   // one array, not one a pixel
        labels = [UInt32](repeating: 0, count: width * height)
    }

    /// Labels: a character, a shape of a colour (its region; its centre as a mark has a label of
    /// its own), or a colour alone (grays, black and white carry none: they are background,
    /// clutter and axes). A character's label is its glyph's: lower case is drawn (and
    /// recognised) as capitals.
    public static func label(character c: Character) -> UInt32 {
        0x1000_0000 | (UInt32(Character(c.uppercased()).unicodeScalars.first!.value) & 0xFF_FFFF)
    }
    /// A coloured shape's label keeps its kind (bits 12–23) and its colour (bits 0–11) apart, so
    /// that the encoder stand-in can recognise the two separately.
    public static func label(shape: String, color: RGB) -> UInt32 {
        0x2000_0000 | UInt32(truncatingIfNeeded: stableHash(shape) & 0xFFF) << 12 | UInt32(truncatingIfNeeded: stableHash("\(color)") & 0xFFF)
    }
    public static func label(centreOf shape: String, color: RGB) -> UInt32 { 0x4000_0000 | (label(shape: shape, color: color) & 0xFF_FFFF) }
    public static func label(color: RGB) -> UInt32 {
        color.r == color.g && color.g == color.b ? 0 : 0x3000_0000 | UInt32(truncatingIfNeeded: stableHash("\(color)") & 0xFF_FFFF)
    }

    public func label(x: Int, y: Int) -> UInt32 { labels[y * width + x] }

    /// Records that something recognisable is centred at (x, y); outside the canvas, nothing.
    public mutating func mark(_ label: UInt32, x: Int, y: Int) {
        guard (0..<width).contains(x), (0..<height).contains(y) else { return }
        marks.append(Mark(label: label, x: x, y: y))
    }

    /// Sets a pixel's colour and what drew it, clipped to the canvas.
    private mutating func paint(_ x: Int, _ y: Int, _ color: RGB, _ label: UInt32) {
        guard (0..<width).contains(x), (0..<height).contains(y) else { return }
        self[x, y] = color
        labels[y * width + x] = label
    }

    public subscript(x: Int, y: Int) -> RGB {
        get { let i = 3 * (y * width + x); return RGB(pixels[i], pixels[i + 1], pixels[i + 2]) }
        set {
            guard (0..<width).contains(x), (0..<height).contains(y) else { return }
            let i = 3 * (y * width + x)
            pixels[i] = newValue.r; pixels[i + 1] = newValue.g; pixels[i + 2] = newValue.b
        }
    }

    /// Fills a rectangle, clipped to the canvas; `label` defaults to the colour's.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: RGB, label: UInt32? = nil) {
        let x0 = max(0, x), x1 = min(width, x + w), y0 = max(0, y), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        let l = label ?? Canvas.label(color: color)
        for yy in y0..<y1 { for xx in x0..<x1 { paint(xx, yy, color, l) } }
        if label == nil, l != 0, let name = color.name { describe(name) }
    }

    /// Adds words to the caption (a shape's drawer names it; fills and text describe themselves).
    public mutating func describe(_ words: String) { caption.append(words) }

    public mutating func disc(centerX cx: Int, centerY cy: Int, radius r: Int, _ color: RGB, label: UInt32? = nil) {
        let l = label ?? Canvas.label(color: color)
        for yy in (cy - r)...(cy + r) { for xx in (cx - r)...(cx + r) where (xx - cx) * (xx - cx) + (yy - cy) * (yy - cy) <= r * r {
            paint(xx, yy, color, l)
        } }
    }

    /// Paints the pixels of the square (x, y, size) whose offsets (dx, dy) in it `covers`.
    public mutating func region(x: Int, y: Int, size s: Int, _ color: RGB, label: UInt32? = nil, covers: (_ dx: Int, _ dy: Int) -> Bool) {
        let l = label ?? Canvas.label(color: color)
        for dy in 0..<s { for dx in 0..<s where covers(dx, dy) { paint(x + dx, y + dy, color, l) } }
    }

    /// An upward triangle inside the square (x, y, size).
    public mutating func triangle(x: Int, y: Int, size s: Int, _ color: RGB, label: UInt32? = nil) {
        let l = label ?? Canvas.label(color: color)
        for row in 0..<s {
            let half = row * s / (2 * max(s - 1, 1))
            for xx in (x + s / 2 - half)...(x + s / 2 + half) { paint(xx, y + row, color, l) }
        }
    }

    public mutating func line(x0: Int, y0: Int, x1: Int, y1: Int, _ color: RGB) {
        let steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in 0...steps { paint(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps, color, Canvas.label(color: color)) }
    }

    /// Draws text with the 5×7 font, each font pixel a `scale`×`scale` block, one blank column
    /// between characters; each character is marked at its centre. Returns the width drawn.
    @discardableResult
    public mutating func text(_ s: String, x: Int, y: Int, scale: Int = 1, _ color: RGB = .black) -> Int {
        var cursor = x
        describe(s.uppercased())   // as drawn: the font has capitals only
        for c in s {
            for gy in 0..<BitmapFont.height { for gx in 0..<BitmapFont.width where BitmapFont.ink(c, x: gx, y: gy) {
                fill(x: cursor + gx * scale, y: y + gy * scale, width: scale, height: scale, color, label: 0)
            } }
            if c != " " { mark(Canvas.label(character: c), x: cursor + BitmapFont.width * scale / 2, y: y + BitmapFont.height * scale / 2) }
            cursor += (BitmapFont.width + 1) * scale
        }
        return cursor - x
    }

    public static func textWidth(_ s: String, scale: Int = 1) -> Int { s.count * (BitmapFont.width + 1) * scale }

    /// Area-averaged resize to a smaller (or equal) size, as a base view of the whole image.
    public func downsampled(width w: Int, height h: Int) -> Canvas {
        var out = Canvas(width: w, height: h)
        for y in 0..<h { for x in 0..<w {
            let x0 = x * width / w, x1 = max(x0 + 1, (x + 1) * width / w), y0 = y * height / h, y1 = max(y0 + 1, (y + 1) * height / h)
            var sum = (Float(0), Float(0), Float(0))
            for yy in y0..<y1 { for xx in x0..<x1 { let p = self[xx, yy]; sum.0 += p.r; sum.1 += p.g; sum.2 += p.b } }
            let n = Float((x1 - x0) * (y1 - y0))
            // The label drawn on most of the block (ties: the first in raster order).
            var counts: [UInt32: Int] = [:], label: UInt32 = 0
            for yy in y0..<y1 { for xx in x0..<x1 where labels[yy * width + xx] != 0 {
                let l = labels[yy * width + xx]
                counts[l, default: 0] += 1
                if counts[l]! > counts[label, default: 0] { label = l }
            } }
            out.paint(x, y, RGB(sum.0 / n, sum.1 / n, sum.2 / n), label)
        } }
        out.marks = marks.map { Mark(label: $0.label, x: $0.x * w / width, y: $0.y * h / height) }
        return out
    }

    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> Canvas {
        var out = Canvas(width: w, height: h)
        for yy in 0..<h { for xx in 0..<w { out.paint(xx, yy, self[x + xx, y + yy], labels[(y + yy) * width + x + xx]) } }
        for m in marks { out.mark(m.label, x: m.x - x, y: m.y - y) }
        return out
    }

    /// The image as characters, at most `columns` wide (two rows of pixels per text line's cell
    /// height), darker pixels with denser characters.
    public func ascii(columns: Int = 64) -> String {
        let ramp = Array(" .:-=+*#%@")
        let cw = max(1, (width + columns - 1) / columns), ch = 2 * cw
        var lines: [String] = []
        for y in stride(from: 0, to: height, by: ch) {
            var line = ""
            for x in stride(from: 0, to: width, by: cw) {
                var dark: Float = 0, n: Float = 0
                for yy in y..<min(height, y + ch) { for xx in x..<min(width, x + cw) { dark += 1 - self[xx, yy].luminance; n += 1 } }
                line.append(ramp[min(ramp.count - 1, Int(dark / n * Float(ramp.count)))])
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The image as an 8-bit RGB PNG (stored, uncompressed deflate blocks: no compression library needed).
    public func png() -> Data {
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + 3 * width))
        for y in 0..<height {
            raw.append(0)   // filter: none
            for x in 0..<width {
                let p = self[x, y]
                for v in [p.r, p.g, p.b] { raw.append(UInt8(max(0, min(255, (v * 255).rounded())))) }
            }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, raw.count - offset)
            zlib.append(offset + n == raw.count ? 1 : 0)
            zlib += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            zlib += raw[offset..<offset + n]
            offset += n
        } while offset < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        zlib += bigEndian((b << 16) | a)

        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            png += bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
        }
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 2, 0, 0, 0])
        chunk("IDAT", zlib)
        chunk("IEND", [])
        return Data(png)
    }
}

private func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

private let crcTable: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

private func crc32(_ bytes: [UInt8]) -> UInt32 {
    ~bytes.reduce(UInt32(0xFFFF_FFFF)) { crcTable[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
}
