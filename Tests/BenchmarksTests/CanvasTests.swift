import Benchmarks
import Foundation
import TestSupport
import XCTest

final class CanvasTests: XCTestCase {
    func testTextUsesTheBitmapFont() {
        var c = Canvas(width: 12, height: 7)
        XCTAssertEqual(c.text("A1", x: 0, y: 0), 12)
        // "A": row 0 is .###., row 3 is #####.
        XCTAssertEqual((0..<5).map { c[$0, 0] == .black }, [false, true, true, true, false])
        XCTAssertEqual((0..<5).map { c[$0, 3] == .black }, [true, true, true, true, true])
        XCTAssertEqual(c[5, 3], .white, "a blank column between characters")
        XCTAssertTrue(c[8, 0] == .black, "'1' starts at column 6")
        var lower = Canvas(width: 6, height: 7)
        lower.text("a", x: 0, y: 0)
        var upper = Canvas(width: 6, height: 7)
        upper.text("A", x: 0, y: 0)
        XCTAssertEqual(lower, upper, "lower case draws as capitals")
        XCTAssertEqual(Canvas.textWidth("ABC", scale: 2), 36)
    }

    func testShapesAndResizing() {
        var c = Canvas(width: 8, height: 8)
        c.fill(x: 0, y: 0, width: 4, height: 8, .black)
        let half = c.downsampled(width: 2, height: 2)
        XCTAssertEqual(half[0, 0], .black)
        XCTAssertEqual(half[1, 1], .white)
        XCTAssertEqual(c.downsampled(width: 1, height: 1)[0, 0], RGB(0.5, 0.5, 0.5))
        XCTAssertEqual(c.cropped(x: 2, y: 2, width: 4, height: 4)[1, 0], .black)
        XCTAssertEqual(c.cropped(x: 2, y: 2, width: 4, height: 4)[2, 0], .white)
        var d = Canvas(width: 11, height: 11)
        d.disc(centerX: 5, centerY: 5, radius: 3, .black)
        XCTAssertEqual(d[5, 2], .black); XCTAssertEqual(d[2, 2], .white)
        XCTAssertEqual(c.ascii(columns: 8).split(separator: "\n").first, "@@@@    ")
    }

    /// The PNG decodes with Python's zlib to the same bytes.
    func testPNGDecodes() throws {
        var c = Canvas(width: 300, height: 250)
        c.fill(x: 10, y: 20, width: 30, height: 40, RGB.named[0].color)
        c.text("CHART 42%", x: 50, y: 100, scale: 3)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("canvas-\(UUID()).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try c.png().write(to: URL(fileURLWithPath: path))
        let script = """
        import sys, zlib, struct
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
        pos, idat, chunks = 8, b'', []
        while pos < len(data):
            n, = struct.unpack('>I', data[pos:pos+4]); kind = data[pos+4:pos+8]; body = data[pos+8:pos+8+n]
            crc, = struct.unpack('>I', data[pos+8+n:pos+12+n]); assert crc == zlib.crc32(kind + body) & 0xffffffff
            chunks.append(kind); idat += body if kind == b'IDAT' else b''; pos += 12 + n
        w, h = struct.unpack('>II', data[16:24]); raw = zlib.decompress(idat)
        row = lambda y: raw[y * (1 + 3 * w) + 1:(y + 1) * (1 + 3 * w)]
        print(w, h, chunks[0].decode(), chunks[-1].decode(), list(row(30)[3 * 15:3 * 15 + 3]), list(row(0)[:3]))
        """
        let out = try runPython(script, arguments: [path]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(out, "300 250 IHDR IEND [217, 26, 26] [255, 255, 255]")
    }
}
