import Benchmarks
import Foundation
import XCTest

/// Each metric on hand-computed cases, edge cases included.
final class MetricsTests: XCTestCase {
    func testEditDistance() {
        XCTAssertEqual(Metrics.levenshtein("kitten", "sitting"), 3)
        XCTAssertEqual(Metrics.normalizedEditDistance("kitten", "sitting"), 3.0 / 7, accuracy: 1e-12)
        XCTAssertEqual(Metrics.normalizedEditDistance("", ""), 0)
        XCTAssertEqual(Metrics.normalizedEditDistance("", "abc"), 1)
        XCTAssertEqual(Metrics.levenshtein("naïve", "naive"), 1, "by Unicode scalar")
    }

    func testANLS() {
        XCTAssertEqual(Metrics.anls(prediction: "Hello World", references: ["hello  world"]), 1, "case and white space")
        XCTAssertEqual(Metrics.anls(prediction: "hello", references: ["hallo"]), 0.8, accuracy: 1e-12)
        XCTAssertEqual(Metrics.anls(prediction: "ab", references: ["ax"]), 0, "NL = 0.5 is at the threshold: 0")
        XCTAssertEqual(Metrics.anls(prediction: "cat", references: ["dog", "cats"]), 0.75, accuracy: 1e-12, "best reference")
        XCTAssertEqual(Metrics.anls(prediction: "", references: ["abc"]), 0, "empty prediction")
        XCTAssertEqual(Metrics.anls(prediction: "x", references: []), 0)
    }

    func testRelaxedAccuracy() {
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "10.4", references: ["10"]), 1, "4 % off")
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "10.6", references: ["10"]), 0, "6 % off")
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "12%", references: ["0.12"]), 1, "percent reads as a fraction")
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "12", references: ["12%"]), 0)
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "12 kg", references: ["12"]), 0, "units make it a string")
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: " Yes", references: ["no", "yes"]), 1, "case, several references")
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "0", references: ["0"]), 1)
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "0.01", references: ["0"]), 0, "zero needs an exact zero")
        XCTAssertEqual(Metrics.relaxedAccuracy(prediction: "", references: ["3"]), 0, "empty prediction")
    }

    func testVQANormalisation() {
        XCTAssertEqual(Metrics.vqaNormalize("Hello, World!"), "hello world")
        XCTAssertEqual(Metrics.vqaNormalize("The Two cats."), "2 cats")
        XCTAssertEqual(Metrics.vqaNormalize("3.5"), "3.5", "a period before a digit stays")
        XCTAssertEqual(Metrics.vqaNormalize("1,000"), "1000")
        XCTAssertEqual(Metrics.vqaNormalize("dont"), "don't")
        XCTAssertEqual(Metrics.vqaNormalize(""), "")
    }

    func testVQAAccuracy() {
        let refs = Array(repeating: "two", count: 3) + Array(repeating: "three", count: 7)
        // Leave-one-out: the 3 "two" subsets see 2 matches (2/3), the 7 others see 3 (1).
        XCTAssertEqual(Metrics.vqaAccuracy(prediction: "2", references: refs), (3 * 2.0 / 3 + 7) / 10, accuracy: 1e-12)
        XCTAssertEqual(Metrics.vqaAccuracy(prediction: "The cat.", references: ["cat"] + Array(repeating: "dog", count: 9)),
                       0.3, accuracy: 1e-12)
        XCTAssertEqual(Metrics.vqaAccuracy(prediction: "three", references: refs), 1)
        XCTAssertEqual(Metrics.vqaAccuracy(prediction: "", references: refs), 0)
    }

    func testSubstringAndExactMatch() {
        XCTAssertEqual(Metrics.substringMatch(prediction: "The answer is STOP sign", references: ["stop"]), 1)
        XCTAssertEqual(Metrics.substringMatch(prediction: "The answer is STOP sign", references: ["go", ""]), 0)
        XCTAssertEqual(Metrics.substringMatch(prediction: "", references: ["a"]), 0)
        XCTAssertEqual(Metrics.exactMatch(prediction: "Three.", references: ["3"]), 1)
        XCTAssertEqual(Metrics.exactMatch(prediction: "(B)", references: ["b"]), 1)
    }

    func testPOPE() {
        let s = Metrics.pope(predictions: ["Yes, there is", "No.", "yes", "I think not", "yes"], labels: [true, false, false, true, true])
        XCTAssertEqual(s.accuracy, 0.6, accuracy: 1e-12)
        XCTAssertEqual(s.precision, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(s.recall, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(s.f1, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(s.yesRatio, 0.6, accuracy: 1e-12)
        XCTAssertEqual(Metrics.pope(predictions: ["", "maybe"], labels: [true, false]).recall, 0, "no answer counts as no")
    }

    func testGrounding() {
        let box = Metrics.Box(0, 0, 10, 10)
        XCTAssertEqual(Metrics.iou(box, Metrics.Box(5, 0, 15, 10)), 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(Metrics.groundingAccuracy(prediction: "[5, 0, 15, 10]", reference: box), 0)
        XCTAssertEqual(Metrics.groundingAccuracy(prediction: "The box is [1, 1, 10, 10].", reference: box), 1, "IoU 0.81")
        XCTAssertEqual(Metrics.parseBox("[0.5, 1, 3, 4]"), Metrics.Box(0.5, 1, 3, 4))
        XCTAssertEqual(Metrics.groundingAccuracy(prediction: "left", reference: box), 0, "no box")
        XCTAssertEqual(Metrics.iou(box, Metrics.Box(20, 20, 30, 30)), 0)
    }

    func testBLEU4() {
        XCTAssertEqual(Metrics.bleu4(candidates: ["a b c d e"], references: ["a b c d e"]), 1, accuracy: 1e-12)
        // Clipped precisions 5/6, 3/5, 2/4, 1/3; equal lengths, no brevity penalty.
        XCTAssertEqual(Metrics.bleu4(candidates: ["the cat sat on the mat"], references: ["the cat sat on a mat"]),
                       pow(5.0 / 6 * 3 / 5 * 2 / 4 * 1 / 3, 0.25), accuracy: 1e-12)
        // A 5-word candidate against a 10-word reference pays exp(1 − 10/5).
        XCTAssertEqual(Metrics.bleu4(candidates: ["a b c d e"], references: ["a b c d e f g h i j"]), exp(-1.0), accuracy: 1e-12)
        XCTAssertEqual(Metrics.bleu4(candidates: ["a b c"], references: ["a b c"]), 0, "no 4-grams at all")
        XCTAssertEqual(Metrics.bleu4(candidates: [""], references: ["a b c d"]), 0, "empty prediction")
    }
}
