import Foundation
import HDF5
import XCTest

final class HDF5Tests: XCTestCase {
    func testDatasetsAndAttributesRoundTrip() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-\(UUID()).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let file = try HDF5File(path: path, mode: .create)
            try file.write([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3], at: "scores/doc-vqa/anls")
            try file.write([0.5, 0.25], shape: [2], at: "timing/seconds")
            try file.setAttribute("variant", "proxyv(r=4)@from:12")
        }
        let file = try HDF5File(path: path, mode: .readOnly)
        let (values, shape) = try file.readFloats("scores/doc-vqa/anls")
        XCTAssertEqual(values, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(shape, [2, 3])
        XCTAssertEqual(try file.readDoubles("timing/seconds").values, [0.5, 0.25])
        XCTAssertEqual(try file.attribute("variant"), "proxyv(r=4)@from:12")
        XCTAssertThrowsError(try file.readFloats("nothing/here")) { XCTAssertTrue("\($0)".contains("nothing/here")) }
    }

    func testGroupsAttributesOnObjectsAndStrings() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-\(UUID()).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let file = try HDF5File(path: path, mode: .create)
            try file.createGroup("scores/pope")
            try file.createGroup("scores/count")
            try file.setAttribute("accuracy", 0.75, on: "scores/pope")
            try file.setAttribute("metric", "exact-match", on: "/scores/count")
            try file.setAttribute("status", "running")
            try file.setAttribute("status", "complete")   // replaced, not duplicated
            try file.write(strings: ["yes", "", "a longer answer"], at: "scores/pope/predictions")
            XCTAssertThrowsError(try file.setAttribute("x", 1.0, on: "missing/group"))
        }
        let file = try HDF5File(path: path, mode: .readOnly)
        XCTAssertEqual(try file.members(of: "scores"), ["count", "pope"])
        XCTAssertEqual(try file.members(of: "/"), ["scores"])
        XCTAssertEqual(try file.numberAttribute("accuracy", on: "scores/pope"), 0.75)
        XCTAssertEqual(try file.attribute("metric", on: "scores/count"), "exact-match")
        XCTAssertEqual(try file.attribute("status"), "complete")
        XCTAssertEqual(try file.readStrings("scores/pope/predictions"), ["yes", "", "a longer answer"])
        XCTAssertTrue(file.contains("scores/pope/predictions"))
        XCTAssertFalse(file.contains("scores/ocr/predictions"))
        XCTAssertThrowsError(try file.numberAttribute("metric", on: "scores/count"))
        XCTAssertThrowsError(try file.members(of: "nothing"))
    }

    func testNonHDF5FileIsRefusedWithItsName() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("squeeze-\(UUID()).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "not hdf5".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HDF5File(path: path, mode: .readOnly)) { XCTAssertTrue("\($0)".contains(path)) }
    }
}
