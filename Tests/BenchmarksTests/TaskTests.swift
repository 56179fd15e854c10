import Benchmarks
import Kernels
import XCTest

final class TaskTests: XCTestCase {
    func key(_ s: Sample) -> String { s.question + "|" + s.references.joined(separator: "/") + "|" + s.image.ascii(columns: 64) }

    func testSamplesAreDeterministicAndSplitsNeverOverlap() {
        for task in BenchmarkTask.all {
            // A sample depends on its task, split and index only: drawn on every core, in reverse
            // order, it is the sample drawn alone.
            let alone = (0..<6).map { key(task.sample($0, split: .val, side: 64)) }
            XCTAssertEqual(Parallel.map(6) { key(task.sample(5 - $0, split: .val, side: 64)) }.reversed(), alone, task.name)
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

    /// The bootstrap standard error: zero when every answer is right, near √(p(1−p)/n) for an
    /// accuracy p, and defined for corpus metrics (BLEU-4) too.
    func testStandardErrorByBootstrap() {
        let count = BenchmarkTask.named("count")!, samples = (0..<100).map { count.sample($0, split: .val, side: 64) }
        let right = samples.map { $0.references[0] }
        XCTAssertEqual(count.standardError(predictions: right, samples: samples), 0)
        let half = samples.enumerated().map { $0.offset % 2 == 0 ? $0.element.references[0] : "wrong" }
        XCTAssertEqual(count.standardError(predictions: half, samples: samples), (0.25 / 100.0).squareRoot(), accuracy: 0.012)
        let parse = BenchmarkTask.named("doc-parse")!, pages = (0..<20).map { parse.sample($0, split: .val, side: 64) }
        let someRight = pages.enumerated().map { $0.offset % 3 == 0 ? $0.element.references[0] : "STOP" }
        XCTAssertGreaterThan(parse.standardError(predictions: someRight, samples: pages), 0.01)
    }

    /// Answering without looking (always the most frequent training answer) scores low on every
    /// fine-grained task (measured 0.015 to 0.137 on 200 samples: below 0.2) and near 1/6 on the
    /// six-colour probe.
    func testImageBlindAnswersScoreLow() {
        for task in BenchmarkTask.all where task.fineGrained {
            let samples = Parallel.map(200) { task.sample($0, split: .val, side: 64) }
            XCTAssertLessThan(TrainingAnswers(task, side: 64).blindScore(samples), 0.2, task.name)
        }
        let colour = BenchmarkTask.named("colour")!
        XCTAssertEqual(TrainingAnswers(colour, side: 64).blindScore((0..<120).map { colour.sample($0, split: .val, side: 64) }), 1.0 / 6, accuracy: 0.08)
    }

    /// TextVQA's scene holds a second word besides the sign's, painted on the scene itself: the
    /// answer is the word on the white plate, so reading whatever text there is does not do.
    func testTextVQAAsksForTheSignsWordAmongTwo() {
        var signAbove: Set<Bool> = []
        for side in [32, 96] {
            for i in 0..<20 {
                let s = BenchmarkTask.named("text-vqa")!.sample(i, split: .train, side: side)
                let texts = s.image.caption.filter { $0 == $0.uppercased() }   // shapes are "colour kind"
                XCTAssertEqual(texts.count, 2)
                XCTAssertEqual(texts[0], s.references[0])
                XCTAssertNotEqual(texts[0], texts[1])
                // Characters' centres, the sign's first; the blank column after a glyph shows the plate, or the scene.
                let letters = s.image.marks.filter { $0.label >> 28 == 1 }
                func onPlate(_ m: Canvas.Mark) -> Bool { s.image[m.x + 3, m.y] == .white }
                XCTAssertTrue(letters.prefix(texts[0].count).allSatisfy(onPlate))
                XCTAssertFalse(letters.dropFirst(texts[0].count).contains(where: onPlate))
                signAbove.insert(letters[0].y < letters.last!.y)
            }
        }
        XCTAssertEqual(signAbove, [true, false], "the sign is above the other word in some scenes, below in others")
    }
}

/// Follow-up questions: other questions about the same image, answered by what was drawn.
final class FollowUpTests: XCTestCase {
    let side = 96

    func testFollowUpsAreOtherSpellableQuestions() {
        let tokenizer = Tokenizer()
        var asked: [String: Int] = [:]
        for task in BenchmarkTask.all + BenchmarkTask.probes {
            for i in 0..<10 {
                let s = task.sample(i, split: .train, side: side), questions = [s.question] + s.followUps.map(\.question)
                XCTAssertEqual(Set(questions).count, questions.count, "\(task.name): a question asked twice")
                for t in s.followUps { XCTAssertEqual(tokenizer.decode(tokenizer.encode(t.question + t.answer)), t.question + t.answer) }
                asked[task.name, default: 0] += s.followUps.count
            }
        }
        for name in ["doc-vqa", "chart-qa", "info-vqa", "pope", "count", "attribute", "grounding"] { XCTAssertGreaterThan(asked[name]!, 9, name) }
        for name in ["text-vqa", "ocr", "doc-parse", "colour", "locate"] { XCTAssertEqual(asked[name], 0, name) }
    }

    /// The shape questions' answers agree with the shapes' centre marks on the canvas.
    func testShapeFollowUpsAnswerWhatWasDrawn() {
        func drawn(_ s: Sample, shape: String) -> [Canvas.Mark] {
            let labels = RGB.named.map { Canvas.label(centreOf: shape, color: $0.color) }
            return s.image.marks.filter { labels.contains($0.label) }
        }
        func words(_ q: String) -> [String] { q.split(whereSeparator: { !$0.isLetter }).map(String.init) }
        var popeFirst: Set<String> = [], popeFirstFollowUps: Set<String> = [], popeYeses: Set<Int> = []
        for i in 0..<20 {
            let pope = BenchmarkTask.named("pope")!.sample(i, split: .train, side: side)
            let turns = [Turn(pope.question, pope.references[0])] + pope.followUps
            for t in turns {   // Is there a CATEGORY in the image?
                XCTAssertEqual(t.answer, drawn(pope, shape: words(t.question)[3]).isEmpty ? "no" : "yes", t.question)
            }
            XCTAssertEqual(turns.map { words($0.question)[3] }.sorted(), ["circle", "cross", "diamond", "ring", "square", "triangle"], "every category asked once")
            popeYeses.insert(turns.filter { $0.answer == "yes" }.count)
            popeFirst.insert(pope.references[0])
            popeFirstFollowUps.insert(pope.followUps[0].answer)
            let count = BenchmarkTask.named("count")!.sample(i, split: .train, side: side)
            for t in count.followUps {   // How many SHAPEs are there?
                XCTAssertEqual(t.answer, String(drawn(count, shape: String(words(t.question)[2].dropLast())).count), t.question)
            }
            for (name, objects) in [("grounding", 2...4), ("locate", 1...1)] {
                let sample = BenchmarkTask.named(name)!.sample(i, split: .train, side: side)
                XCTAssertTrue(objects.contains(sample.image.marks.count), name)
                for t in [Turn(sample.question, sample.references[0])] + sample.followUps {   // Where is the CATEGORY? …
                    let w = words(t.question), box = t.answer.dropFirst().dropLast().split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces))! }
                    let centres = drawn(sample, shape: w[3])
                    XCTAssertEqual(centres.count, 1, t.question)
                    let (x, y) = (Double(centres[0].x) * 100 / Double(side), Double(centres[0].y) * 100 / Double(side))
                    XCTAssertTrue(box[0] < x && x < box[2] && box[1] < y && y < box[3], "\(t.question) \(t.answer)")
                }
            }
            // What color is the object? / What is the object? / Where is the object? (A) … (D) …: each
            // answer is what was drawn, one of the question's options; the first's letter scores too.
            let attribute = BenchmarkTask.named("attribute")!.sample(i, split: .train, side: side)
            let mark = attribute.image.marks[0], drawnObject = attribute.image.caption[0].split(separator: " ").map(String.init)   // "COLOUR CATEGORY"
            let quadrant = ["top", "bottom"][mark.y * 2 / side] + " " + ["left", "right"][mark.x * 2 / side]
            var asked: [String] = []
            for t in [Turn(attribute.question, attribute.references[0])] + attribute.followUps {
                let question = words(t.question).prefix(2).joined(separator: " ")
                asked.append(question)
                XCTAssertEqual(t.answer, ["What color": drawnObject[0], "What is": drawnObject[1], "Where is": quadrant][question], t.question)
                XCTAssertEqual(t.question.components(separatedBy: ") \(t.answer)").count, 2, "the answer is one option: \(t.question)")
            }
            let letter = attribute.references[1]
            XCTAssertTrue(attribute.question.contains("(\(letter)) \(attribute.references[0])"), "the letter is the answer's option's")
            XCTAssertEqual(Metrics.exactMatch(prediction: letter, references: attribute.references), 1)
            XCTAssertEqual(asked.sorted(), ["What color", "What is", "Where is"], "colour, category and place asked once each")
            XCTAssertEqual(attribute.image.marks.count, 1)
        }
        XCTAssertEqual(popeFirst, ["yes", "no"])
        XCTAssertEqual(popeFirstFollowUps, ["yes", "no"], "the conversation's order does not give the answers away")
        XCTAssertTrue(popeYeses.isSuperset(of: [1, 2, 3, 4, 5]), "the number of objects drawn varies: \(popeYeses.sorted())")
        // Nor do its first answers give its last: with two to four objects drawn, a first "yes" made the last "no" likelier.
        var lastYes = ["yes": 0, "no": 0], first = ["yes": 0, "no": 0]
        for i in 0..<600 {
            let pope = BenchmarkTask.named("pope")!.sample(i, split: .train, side: side)
            first[pope.references[0]]! += 1
            if pope.followUps.last!.answer == "yes" { lastYes[pope.references[0]]! += 1 }
        }
        let (afterYes, afterNo) = (Double(lastYes["yes"]!) / Double(first["yes"]!), Double(lastYes["no"]!) / Double(first["no"]!))
        XCTAssertLessThan(abs(afterYes - afterNo), 0.1, "the last answer is 'yes' as often after a first 'yes' (\(afterYes)) as after a 'no' (\(afterNo))")
    }

    /// POPE's six categories are six different figures: each draws its own set of pixels around
    /// its centre, the same wherever and in whatever colour it is drawn.
    func testPOPECategoriesAreDistinctFigures() {
        var figures: [String: Set<[Int]>] = [:]
        let square = (-11...11).flatMap { dy in (-11...11).map { dx in [dx, dy] } }   // about a centre: objects of 96 / 4 − 2 = 22 px
        for i in 0..<40 {
            let pope = BenchmarkTask.named("pope")!.sample(i, split: .train, side: side)
            for (object, mark) in zip(pope.image.caption, pope.image.marks) {   // "COLOUR CATEGORY", drawn in order
                let (colour, category) = (String(object.split(separator: " ")[0]), String(object.split(separator: " ")[1]))
                let region = Canvas.label(shape: category, color: RGB.named.first { $0.name == colour }!.color)
                let offsets = square.filter { pope.image.label(x: mark.x + $0[0], y: mark.y + $0[1]) == region }
                figures[category, default: []].insert(offsets.flatMap { $0 })
            }
        }
        XCTAssertEqual(figures.keys.sorted(), ["circle", "cross", "diamond", "ring", "square", "triangle"])
        XCTAssertTrue(figures.values.allSatisfy { $0.count == 1 }, "a category's figure does not change")
        XCTAssertEqual(Set(figures.values.map { $0.first! }).count, 6)
        XCTAssertTrue(figures.values.allSatisfy { $0.first!.count / 2 >= 22 * 22 / 4 }, "each covers a good part of its square")
    }

    /// Counting needs telling shapes apart: the number of shapes in all does not give the answer.
    func testCountIsNotTheTotalLessAConstant() {
        let count = BenchmarkTask.named("count")!
        let answersByTotal = Dictionary(grouping: (0..<40).map { count.sample($0, split: .train, side: side) }, by: \.image.marks.count)
            .mapValues { Set($0.map(\.references[0])) }
        XCTAssertTrue(answersByTotal.values.contains { $0.count > 1 }, "\(answersByTotal)")
    }

    /// A caption tells what was drawn: every text, every shape by colour and kind, every colour
    /// filled; it holds each answer a question about text asks for.
    func testCaptionsTellWhatWasDrawn() {
        for i in 0..<20 {
            for name in ["doc-vqa", "chart-qa", "info-vqa", "text-vqa", "ocr", "doc-parse"] {
                let s = BenchmarkTask.named(name)!.sample(i, split: .train, side: side), caption = s.image.caption.joined(separator: " ")
                for answer in [s.references[0]] + s.followUps.map(\.answer) { XCTAssertTrue(caption.contains(answer), "\(name): '\(answer)' not in '\(caption)'") }
            }
            let pope = BenchmarkTask.named("pope")!.sample(i, split: .train, side: side)
            let objects = pope.image.caption
            XCTAssertEqual(objects.count, ([pope.references[0]] + pope.followUps.map(\.answer)).filter { $0 == "yes" }.count, "one object for each 'yes'")
            for t in [Turn(pope.question, pope.references[0])] + pope.followUps {   // Is there a CATEGORY in the image?
                let category = t.question.split(separator: " ")[3]
                XCTAssertEqual(objects.contains { $0.hasSuffix(" " + category) }, t.answer == "yes", t.question)
            }
            let count = BenchmarkTask.named("count")!.sample(i, split: .train, side: side)
            for t in [Turn(count.question, count.references[0])] + count.followUps {   // How many SHAPEs are there?
                let shape = String(t.question.split(separator: " ")[2].dropLast())
                XCTAssertEqual(String(count.image.caption.filter { $0.hasSuffix(" " + shape) }.count), t.answer, t.question)
            }
            let colour = BenchmarkTask.named("colour")!.sample(i, split: .train, side: side)
            XCTAssertEqual(colour.image.caption, colour.references)
        }
    }
}

final class PromptTests: XCTestCase {
    func testTemplateAndLayout() {
        var sample = BenchmarkTask.named("count")!.sample(0, split: .train, side: 64)
        sample.followUps = []   // one turn (conversations: testConversation)
        let t = Tokenizer(), prompt = Prompt(sample: sample, tokenizer: t)
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

    /// Language pretraining's prompt: the image's caption, then the same conversation, and no
    /// vision tokens.
    func testCaptionInPlaceOfTheImage() {
        let t = Tokenizer(), sample = BenchmarkTask.named("doc-vqa")!.sample(1, split: .train, side: 64)
        let seeing = Prompt(sample: sample, tokenizer: t), reading = Prompt(sample: sample, tokenizer: t, seesImage: false)
        let caption = t.encode(" " + sample.image.caption.joined(separator: " "))
        XCTAssertEqual(reading.question, caption + seeing.question)
        XCTAssertEqual(reading.questionTargets, Array(repeating: -1, count: caption.count) + seeing.questionTargets)
        XCTAssertEqual(reading.answer, seeing.answer)
        let layout = reading.layout(VisionGeometry(grid: 4, patch: 4, crops: 2))
        XCTAssertEqual(layout.rows(of: [.vision, .newline]), [])
        XCTAssertEqual(layout.count, reading.system.count + reading.question.count + reading.answer.count)
    }

    /// A training prompt asks the follow-ups after the question; every answer is learned, from
    /// its marker to its <eos>, and nothing else is; a prompt for generation asks one question.
    func testConversation() {
        let t = Tokenizer(), sample = BenchmarkTask.named("chart-qa")!.sample(3, split: .train, side: 64)
        let turns = [Turn(sample.question, sample.references[0])] + sample.followUps
        XCTAssertGreaterThan(turns.count, 1)
        let prompt = Prompt(sample: sample, tokenizer: t)
        XCTAssertEqual(prompt.question.count, prompt.questionTargets.count)
        XCTAssertEqual(prompt.answer.count, prompt.answerTargets.count)
        XCTAssertEqual(prompt.rendered(t, geometry: VisionGeometry(grid: 4, patch: 4, crops: 1)),
                       "<bos>Answer briefly. <image: 1 crops × (4×4 + newline)>" + turns.map { " \($0.question)<answer>\($0.answer)<eos>" }.joined())
        // Each answer's tokens and its <eos> are targets, in order, and nothing else.
        let learned = (prompt.questionTargets + prompt.answerTargets).filter { $0 >= 0 }
        XCTAssertEqual(learned, turns.flatMap { t.encode($0.answer) + [Tokenizer.eos] })
        // A target is the token that follows.
        let text = prompt.question + prompt.answer, targets = prompt.questionTargets + prompt.answerTargets
        for (i, target) in targets.enumerated() where target >= 0 { XCTAssertEqual(text[i + 1], target) }
        let single = Prompt(sample: sample, tokenizer: t, withAnswer: false)
        XCTAssertEqual(single.question, t.encode(" " + sample.question) + [Tokenizer.answer])
        XCTAssertEqual(single.questionTargets.filter { $0 >= 0 }, [])
    }
}
