import Benchmarks
import XCTest

final class TaskTests: XCTestCase {
    func key(_ s: Sample) -> String { s.question + "|" + s.references.joined(separator: "/") + "|" + s.image.ascii(columns: 64) }

    func testSamplesAreDeterministicAndSplitsNeverOverlap() {
        for task in BenchmarkTask.all {
            XCTAssertEqual(key(task.sample(5, split: .val, side: 64)), key(task.sample(5, split: .val, side: 64)), task.name)
            var seen: [String: Split] = [:]
            for split in Split.allCases {
                for i in 0..<15 {
                    let k = key(task.sample(i, split: split, side: 64))
                    if let other = seen[k], other != split { XCTFail("\(task.name): a sample in both \(other) and \(split)") }
                    seen[k] = split
                }
            }
            XCTAssertGreaterThan(seen.count, 25, "\(task.name): samples vary")
        }
    }

    func testEverythingIsSpellableAndReferencesScorePerfectly() {
        let tokenizer = Tokenizer()
        for task in BenchmarkTask.all {
            let samples = (0..<12).map { task.sample($0, split: .train, side: 64) }
            for s in samples {
                XCTAssertEqual(tokenizer.decode(tokenizer.encode(s.question)), s.question)
                for r in s.references { XCTAssertEqual(tokenizer.decode(tokenizer.encode(r)), r) }
                XCTAssertEqual(s.image.width, 64)
            }
            let scores = task.score(predictions: samples.map { $0.references[0] }, samples: samples)
            XCTAssertEqual(task.headline(scores), 1, accuracy: 1e-9, "\(task.name): \(scores)")
            if task.metric == .documentParsing { XCTAssertEqual(scores["edit_distance"], 0) }
        }
        XCTAssertEqual(BenchmarkTask.all.filter(\.fineGrained).map(\.name), ["doc-vqa", "chart-qa", "info-vqa", "text-vqa", "ocr"])
    }

    /// Answering without the image does badly on the fine-grained tasks.
    /// Answering without looking (always the most frequent training answer) scores low on every
    /// fine-grained task and near 1/6 on the six-colour probe.
    func testImageBlindAnswersScoreLow() {
        for task in BenchmarkTask.all where task.fineGrained {
            let samples = (0..<30).map { task.sample($0, split: .val, side: 64) }
            XCTAssertLessThan(TrainingAnswers(task, side: 64).blindScore(samples), 0.35, task.name)
        }
        let colour = BenchmarkTask.named("colour")!
        XCTAssertEqual(TrainingAnswers(colour, side: 64).blindScore((0..<120).map { colour.sample($0, split: .val, side: 64) }), 1.0 / 6, accuracy: 0.08)
    }
}

final class PromptTests: XCTestCase {
    func testTemplateAndLayout() {
        let t = Tokenizer(), sample = BenchmarkTask.named("count")!.sample(0, split: .train, side: 64)
        let prompt = Prompt(sample: sample, tokenizer: t)
        XCTAssertEqual(prompt.system.first, Tokenizer.bos)
        XCTAssertEqual(prompt.question.last, Tokenizer.answer)
        XCTAssertEqual(prompt.answer, t.encode(sample.references[0]) + [Tokenizer.eos])
        let geometry = VisionGeometry(grid: 8, patch: 4, crops: 3)
        let layout = prompt.layout(geometry)
        let text = prompt.system.count + prompt.question.count + prompt.answer.count
        XCTAssertEqual(layout.count, text + 3 * 65)
        XCTAssertEqual(Prompt(sample: sample, tokenizer: t, withAnswer: false).answer, [])
        XCTAssertTrue(prompt.rendered(t, geometry: geometry).contains("<image: 3 crops × (8×8 + newline)> How many"))
    }
}
