import Foundation
import Kernels

/// Which part of a task's samples: the three never share a sample.
public enum Split: String, CaseIterable, Codable, Sendable {
    case train, val, test
    var index: Int { Split.allCases.firstIndex(of: self)! }
}

/// One benchmark question about a rendered image.
public struct Sample: Sendable {
    /// The task that drew it.
    public internal(set) var task = ""
    public let image: Canvas
    public let question: String
    /// Reference answers (TextVQA-style tasks have ten); the first is the training target.
    public let references: [String]
    /// POPE's ground truth, grounding's box: what some metrics need besides the references.
    public var label: Bool?
    public var box: Metrics.Box?
    /// More questions about the same image, with their answers: training asks them after the
    /// first, as LLaVA's instruction data holds several turns of conversation per image, so that
    /// the costly image tokens carry several answers' worth of learning. Evaluation asks only
    /// `question`. Drawn without the generator, so that adding them changes no sample.
    public var followUps: [Turn] = []
}

/// One question of a conversation about an image and its answer.
public struct Turn: Sendable, Equatable {
    public let question: String, answer: String
    public init(_ question: String, _ answer: String) { self.question = question; self.answer = answer }
}

extension BenchmarkTask {
    /// The task's scores for predictions of the given samples, as its public evaluator computes them.
    public func score(predictions: [String], samples: [Sample]) -> [String: Double] {
        precondition(predictions.count == samples.count && !samples.isEmpty)
        let each = perSample(predictions: predictions, samples: samples)
        let mean = each.values.reduce(0, +) / Double(samples.count)
        switch metric {
        case .anls: return ["anls": mean]
        case .relaxedAccuracy: return ["relaxed_accuracy": mean]
        case .vqaAccuracy: return ["vqa_accuracy": mean]
        case .substring, .exactMatch, .grounding: return ["accuracy": mean]
        case .pope:
            let s = Metrics.pope(predictions: predictions, labels: samples.map { $0.label! })
            return ["accuracy": s.accuracy, "precision": s.precision, "recall": s.recall, "f1": s.f1, "yes_ratio": s.yesRatio]
        case .documentParsing:
            return ["bleu4": Metrics.bleu4(candidates: predictions, references: samples.map { $0.references[0] }), "edit_distance": mean]
        }
    }

    /// Each sample's score under the task's per-sample metric (POPE: correct or not; document
    /// parsing: normalised edit distance, since BLEU-4 is a corpus score).
    public func perSample(predictions: [String], samples: [Sample]) -> (metric: String, values: [Double]) {
        let pairs = zip(predictions, samples)
        switch metric {
        case .anls: return ("anls", pairs.map { Metrics.anls(prediction: $0, references: $1.references) })
        case .relaxedAccuracy: return ("relaxed_accuracy", pairs.map { Metrics.relaxedAccuracy(prediction: $0, references: $1.references) })
        case .vqaAccuracy: return ("vqa_accuracy", pairs.map { Metrics.vqaAccuracy(prediction: $0, references: $1.references) })
        case .substring: return ("accuracy", pairs.map { Metrics.substringMatch(prediction: $0, references: $1.references) })
        case .exactMatch: return ("accuracy", pairs.map { Metrics.exactMatch(prediction: $0, references: $1.references) })
        case .grounding: return ("accuracy", pairs.map { Metrics.groundingAccuracy(prediction: $0, reference: $1.box!) })
        case .pope: return ("correct", pairs.map { Metrics.popeSaysYes($0) == $1.label! ? 1 : 0 })
        case .documentParsing: return ("edit_distance", pairs.map { Metrics.normalizedEditDistance($0, $1.references[0]) })
        }
    }

    /// The standard error of the headline score on these samples, by bootstrap: the spread of
    /// the headline over `resamples` redraws of the samples with replacement (a fixed seed, so it
    /// prints the same each time). One method for every metric, corpus scores (BLEU-4, POPE's
    /// F1) included, whose error no per-sample formula gives.
    public func standardError(predictions: [String], samples: [Sample], resamples: Int = 200) -> Double {
        precondition(predictions.count == samples.count && !samples.isEmpty && resamples > 1)
        var rng = SeededGenerator(seed: stableHash(name))
        let draws = (0..<resamples).map { _ in samples.indices.map { _ in rng.nextInt(below: samples.count) } }
        let terms = headlineTerms(predictions: predictions, samples: samples)
        let headlines = Parallel.map(resamples) { r in headline(ofDraw: draws[r], terms: terms) }
        let mean = headlines.reduce(0, +) / Double(resamples)
        return (headlines.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(resamples - 1)).squareRoot()
    }

    /// What each sample adds to the headline: summed over any draw of the samples, these terms
    /// give the draw's headline (`headline(ofDraw:terms:)`). They are the sample's score where
    /// the headline is the mean of the per-sample scores; POPE's confusion counts; BLEU-4's
    /// clipped n-gram matches, n-gram counts and lengths — so corpus scores redraw as cheaply.
    public func headlineTerms(predictions: [String], samples: [Sample]) -> [[Double]] {
        switch metric {
        case .pope: return zip(predictions, samples).map { Metrics.popeCounts(prediction: $0, label: $1.label!) }
        case .documentParsing: return zip(predictions, samples).map { Metrics.bleu4Counts(candidate: $0, reference: $1.references[0]) }
        default: return perSample(predictions: predictions, samples: samples).values.map { [$0] }
        }
    }

    /// The headline of a draw of the samples (indices, repeats allowed) from their `headlineTerms`.
    public func headline(ofDraw draw: [Int], terms: [[Double]]) -> Double {
        var sums = [Double](repeating: 0, count: terms.first?.count ?? 0)
        for i in draw { for (k, x) in terms[i].enumerated() { sums[k] += x } }
        switch metric {
        case .pope: return Metrics.pope(confusion: sums).f1
        case .documentParsing: return Metrics.bleu4(counts: sums)
        default: return sums[0] / Double(draw.count)
        }
    }

    /// Whether the headline is the mean of the per-sample scores (all but POPE's F1 and BLEU-4),
    /// which is then the per-sample score kept in a run's file.
    public var headlineIsMean: Bool { metric != .pope && metric != .documentParsing }

    /// The score reported for the task (for Score_fine and tables): its main metric.
    public func headline(_ scores: [String: Double]) -> Double {
        scores["anls"] ?? scores["relaxed_accuracy"] ?? scores["vqa_accuracy"] ?? scores["bleu4"] ?? scores["f1"] ?? scores["accuracy"] ?? 0
    }
}

/// How a task's predictions are scored.
public enum TaskMetric: String, Sendable {
    case anls, relaxedAccuracy = "relaxed-accuracy", vqaAccuracy = "vqa-accuracy", substring, pope, exactMatch = "exact-match"
    case grounding = "iou@0.5", documentParsing = "bleu-4 / edit-distance"
}

/// A synthetic benchmark: a seeded generator of samples and the metric the public evaluator uses.
public struct BenchmarkTask: Sendable {
    public let name: String
    public let metric: TaskMetric
    /// Fine-grained tasks make up Score_fine.
    public let fineGrained: Bool
    let make: @Sendable (inout SeededGenerator, Int) -> Sample   // rng, image side

    /// Sample `index` of a split. A candidate belongs to the split its content hashes to, and
    /// candidates are drawn until one does, so the splits cannot share a sample.
    public func sample(_ index: Int, split: Split, side: Int) -> Sample {
        var rng = SeededGenerator(seed: stableHash("\(name)/\(split.rawValue)/\(index)"))
        while true {
            var s = make(&rng, side)
            s.task = name
            if Int(stableHash(s.question + "|" + s.references[0] + "|" + s.image.fingerprint) % 3) == split.index { return s }
        }
    }

    public static let all: [BenchmarkTask] = [docVQA, chartQA, infoVQA, textVQA, ocr, pope, count, attribute, grounding, docParse]

    /// Tasks outside the suite (not in `all`, not in Score_fine), built to be easy: `colour` checks
    /// that a model learns to look at all; `locate` asks grounding's question about a lone object,
    /// so it checks that a model can write a box, apart from finding the object a question names.
    public static let probes: [BenchmarkTask] = [colour, locate]

    public static func named(_ name: String) -> BenchmarkTask? { (all + probes).first { $0.name == name } }
}

/// What a task's first training answers tell, drawn once: the image-blind answer to each
/// question, and how long a greedy answer may get.
public struct TrainingAnswers: Sendable {
    public let task: BenchmarkTask
    private let byQuestion: [String: String], overall: String
    /// Tokens a greedy answer may take: the characters of the longest of the first 100 training
    /// answers and a quarter more (document parsing transcribes whole pages; most answers are a
    /// word). Counted in characters, so that any spelling of an answer fits.
    public let tokenLimit: Int

    public init(_ task: BenchmarkTask, side: Int, count: Int = 400) {
        let train = Parallel.map(count) { task.sample($0, split: .train, side: side) }
        // Every reference counts (text-vqa's annotators; multiple choice: the letter as well as the text).
        func mostFrequent(_ s: [Sample]) -> String { answerFrequencies(s.flatMap(\.references))[0].answer }
        self.task = task
        byQuestion = Dictionary(grouping: train, by: \.question).mapValues(mostFrequent)
        overall = mostFrequent(train)
        let longest = train.prefix(100).map { $0.references[0].count }.max()!
        tokenLimit = longest + longest / 4 + 2
    }

    /// What a model that ignores the image answers: to each sample, the most frequent training
    /// answer to the same question, else the most frequent overall (POPE: always "yes" or "no";
    /// attribute: always the same letter).
    public func blindAnswers(to samples: [Sample]) -> [String] { samples.map { byQuestion[$0.question] ?? overall } }

    /// The headline score of `blindAnswers` on `samples`: the level a model that looks must clear.
    public func blindScore(_ samples: [Sample]) -> Double {
        task.headline(task.score(predictions: blindAnswers(to: samples), samples: samples))
    }
}

/// Answers with their counts, most frequent first (ties in alphabetical order).
public func answerFrequencies(_ answers: [String]) -> [(answer: String, count: Int)] {
    let counts: [String: Int] = Dictionary(answers.map { ($0, 1) }, uniquingKeysWith: +)
    return counts.map { (answer: $0.key, count: $0.value) }.sorted { a, b in a.count != b.count ? a.count > b.count : a.answer < b.answer }
}

extension BenchmarkTask {
    /// A hash of what the task generators draw — the first samples of every task and probe in
    /// each split: images (pixel by pixel), questions, references, follow-ups, labels and boxes.
    /// The same on every machine; run ids include it, so that a run made with other tasks is not
    /// taken as complete.
    public static let generatorFingerprint: UInt64 = {
        let text = (all + probes).flatMap { task in
            Split.allCases.flatMap { split in
                (0..<2).map { i -> String in
                    let s = task.sample(i, split: split, side: 32)
                    return [task.name, s.image.fingerprint, s.question, s.references.joined(separator: "|"),
                            s.followUps.map { $0.question + "=" + $0.answer }.joined(separator: "|"),
                            s.label.map { "\($0)" } ?? "", s.box.map { "\($0)" } ?? ""].joined(separator: "\n")
                }
            }
        }.joined(separator: "\n\n")
        return fnv1a(text.utf8)
    }()
}

/// FNV-1a: a hash that is the same on every run and machine (Swift's Hasher is seeded per process).
func stableHash(_ s: String) -> UInt64 { fnv1a(s.utf8) }

extension Canvas {
    var fingerprint: String {
        String(pixels.enumerated().reduce(UInt64(0xCBF2_9CE4_8422_2325)) { ($0 ^ UInt64(bitPattern: Int64($1.offset) &* Int64(($1.element * 255).rounded()))) &* 0x100_0000_01B3 })
    }
}

// MARK: the tasks

private let words = ["STOP", "OPEN", "EXIT", "SALE", "CAFE", "BANK", "PARK", "HOTEL", "TAXI", "BUS", "SHOP", "GATE", "ROAD", "MAP", "INN"]
private let fields = ["TOTAL", "DATE", "CODE", "ROOM", "PRICE", "ITEM", "CITY", "NAME"]
private let names = ["ANNA", "BOB", "CHEN", "DIAZ", "EVA", "FORD", "GUS", "HALE"]
private let shapes = ["circle", "square", "triangle"]
/// The object categories of POPE, grounding and attribute: the shapes and three more, so that
/// POPE always has some absent.
private let objects = shapes + ["diamond", "ring", "cross"]
/// The six colours the tasks paint and ask about (black and gray are left to text, clutter and axes).
private let hues = Array(RGB.named.prefix(6))
/// The quadrants attribute's object is placed in, by the names its options use.
private let quadrants = ["top left", "top right", "bottom left", "bottom right"]

private extension SeededGenerator {
    mutating func pick<T>(_ items: [T]) -> T { items[nextInt(below: items.count)] }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + nextInt(below: range.count) }
}

/// Light clutter (gray specks and short lines) so that images are not clean.
private func clutter(_ c: inout Canvas, _ rng: inout SeededGenerator, amount: Int) {
    for _ in 0..<amount {
        let x = rng.nextInt(below: c.width), y = rng.nextInt(below: c.height), gray = RGB(0.75, 0.75, 0.75)
        if rng.nextInt(below: 2) == 0 { c[x, y] = gray } else { c.line(x0: x, y0: y, x1: x + rng.int(-4...4), y1: y + rng.int(-4...4), gray) }
    }
}

private func drawShape(_ c: inout Canvas, _ shape: String, x: Int, y: Int, size: Int, _ color: RGB) {
    let label = Canvas.label(shape: shape, color: color)
    c.describe("\(color.name!) \(shape)")
    c.mark(Canvas.label(centreOf: shape, color: color), x: x + size / 2, y: y + size / 2)
    // Distances from the square's centre, doubled so that even sizes centre exactly (the size doubled is `size`).
    func centred(_ covers: @escaping (_ u: Int, _ v: Int) -> Bool) -> (Int, Int) -> Bool {
        { dx, dy in covers(abs(2 * dx - (size - 1)), abs(2 * dy - (size - 1))) }
    }
    switch shape {
    case "circle": c.disc(centerX: x + size / 2, centerY: y + size / 2, radius: size / 2, color, label: label)
    case "square": c.fill(x: x, y: y, width: size, height: size, color, label: label)
    case "triangle": c.triangle(x: x, y: y, size: size, color, label: label)
    case "diamond": c.region(x: x, y: y, size: size, color, label: label, covers: centred { u, v in u + v <= size })
    case "ring": c.region(x: x, y: y, size: size, color, label: label, covers: centred { u, v in (size * size / 4...size * size).contains(u * u + v * v) })
    case "cross": c.region(x: x, y: y, size: size, color, label: label, covers: centred { u, v in min(u, v) <= size / 3 })
    default: preconditionFailure("no drawing for \(shape)")
    }
}

/// Non-overlapping places for `count` items of `size` on a canvas of `side`, on a coarse grid.
private func places(_ count: Int, size: Int, side: Int, _ rng: inout SeededGenerator) -> [(x: Int, y: Int)] {
    let cells = max(1, side / (size + 2))
    var free = Array(0..<cells * cells)
    free.shuffle(using: &rng)
    return free.prefix(count).map { ($0 % cells * (size + 2) + 1, $0 / cells * (size + 2) + 1) }
}

/// Objects of the given categories in random colours, one to a cell of a 4×4 grid (POPE and
/// grounding): big enough to cover several patches of every view.
private func objectScene(_ rng: inout SeededGenerator, side: Int, categories: [String]) -> (canvas: Canvas, objects: [(category: String, x: Int, y: Int)], size: Int) {
    var c = Canvas(width: side, height: side)
    let size = side / 4 - 2
    let spots = places(categories.count, size: size, side: side, &rng)
    let drawn = zip(categories, spots).map { (category: $0, x: $1.x, y: $1.y) }
    for o in drawn { drawShape(&c, o.category, x: o.x, y: o.y, size: size, rng.pick(hues).color) }
    return (c, drawn, size)
}

extension BenchmarkTask {
    /// A form of "FIELD: VALUE" lines; the question asks for one field.
    static let docVQA = BenchmarkTask(name: "doc-vqa", metric: .anls, fineGrained: true) { rng, side in
        var c = Canvas(width: side, height: side)
        var chosen = fields
        chosen.shuffle(using: &rng)
        let lines = chosen.prefix(max(2, min(side / 10, 5))).map { ($0, $0 == "NAME" ? rng.pick(names) : String(rng.int(10...9999))) }
        for (i, (field, value)) in lines.enumerated() { c.text("\(field):\(value)", x: 1, y: 2 + i * 10 + rng.int(0...2)) }
        clutter(&c, &rng, amount: side / 4)
        let (field, value) = rng.pick(Array(lines))
        var s = Sample(image: c, question: "What is the \(field.lowercased())?", references: [value])
        s.followUps = lines.filter { $0.0 != field }.map { Turn("What is the \($0.0.lowercased())?", $0.1) }
        return s
    }

    /// A bar chart with a value printed on each bar; the question asks for one bar's value.
    static let chartQA = BenchmarkTask(name: "chart-qa", metric: .relaxedAccuracy, fineGrained: true) { rng, side in
        var c = Canvas(width: side, height: side)
        let count = rng.int(2...4), width = side / count
        let labels = Array("ABCDEFGH".shuffled(using: &rng).prefix(count)).map(String.init)
        let values = labels.map { _ in rng.int(1...99) }
        c.line(x0: 0, y0: side - 10, x1: side - 1, y1: side - 10, .black)
        for (i, (label, value)) in zip(labels, values).enumerated() {
            let h = value * (side - 30) / 100 + 2, x = i * width + 2
            c.fill(x: x, y: side - 10 - h, width: width - 6, height: h, rng.pick(hues).color)
            c.text(String(value), x: x, y: side - 19 - h)
            c.text(label, x: x + 1, y: side - 8)
        }
        let i = rng.nextInt(below: count)
        var s = Sample(image: c, question: "What is the value of bar \(labels[i])?", references: [String(values[i])])
        s.followUps = zip(labels, values).filter { $0.0 != labels[i] }.map { Turn("What is the value of bar \($0.0)?", String($0.1)) }
        return s
    }

    /// Coloured blocks with percentages; the question asks for one colour's share.
    static let infoVQA = BenchmarkTask(name: "info-vqa", metric: .anls, fineGrained: true) { rng, side in
        var c = Canvas(width: side, height: side)
        var colors = hues
        colors.shuffle(using: &rng)
        let shares = colors.prefix(3).enumerated().map { i, part -> (String, Int) in
            let y = 2 + i * (side / 3), share = rng.int(1...95)
            c.fill(x: 1, y: y, width: 8, height: 8, part.color)
            c.text("\(share)%", x: 12, y: y)
            return (part.name, share)
        }
        clutter(&c, &rng, amount: side / 4)
        let (name, share) = rng.pick(shares)
        var s = Sample(image: c, question: "What share is \(name)?", references: ["\(share)%"])
        s.followUps = shares.filter { $0.0 != name }.map { Turn("What share is \($0.0)?", "\($0.1)%") }
        return s
    }

    /// A sign (a word on a white plate) in a scene with shapes and a second word painted on the
    /// scene itself, as a photo holds more text than the question asks about: the answer is the
    /// sign's word, so reading any text is not enough.
    static let textVQA = BenchmarkTask(name: "text-vqa", metric: .vqaAccuracy, fineGrained: true) { rng, side in
        var c = Canvas(width: side, height: side, background: RGB(0.85, 0.9, 0.95))
        for _ in 0..<3 { drawShape(&c, rng.pick(shapes), x: rng.int(0...(side - 12)), y: rng.int(0...(side - 12)), size: 10, rng.pick(RGB.named.map(\.color))) }
        let pair = words.shuffled(using: &rng), (word, other) = (pair[0], pair[1])
        // One in each half of the image, so that they never overlap.
        let halves = rng.nextInt(below: 2) == 0 ? [0, side / 2] : [side / 2, 0]
        let w = Canvas.textWidth(word), x = rng.int(0...max(0, side - w - 2)), y = halves[0] + rng.int(0...(side / 2 - 11))
        c.fill(x: x, y: y, width: w + 2, height: 11, .white)
        c.text(word, x: x + 1, y: y + 2)
        c.text(other, x: rng.int(0...max(0, side - Canvas.textWidth(other))), y: halves[1] + rng.int(0...(side / 2 - 8)), rng.pick([RGB.black, RGB.named[2].color]))
        // Ten annotators: most read it right, some in lower case, one or two misread it.
        let misread = String(word.dropLast())
        let references = (0..<10).map { i in i < 7 ? word : i < 9 ? word.lowercased() : misread }
        return Sample(image: c, question: "What word is on the sign?", references: references)
    }

    static let ocr = BenchmarkTask(name: "ocr", metric: .substring, fineGrained: true) { rng, side in
        var c = Canvas(width: side, height: side)
        clutter(&c, &rng, amount: side)
        let text = rng.nextInt(below: 2) == 0 ? rng.pick(words) : String(rng.int(100...99999))
        c.text(text, x: rng.int(0...max(0, side - Canvas.textWidth(text))), y: rng.int(0...(side - 8)), rng.pick([RGB.black, RGB.named[2].color]))
        return Sample(image: c, question: "What text is in the image?", references: [text])
    }

    /// The colour of a rectangle covering at least a quarter of the image: one of six answers.
    static let colour = BenchmarkTask(name: "colour", metric: .exactMatch, fineGrained: false) { rng, side in
        var c = Canvas(width: side, height: side)
        let (w, h) = (rng.int((side / 2)...side), rng.int((side / 2)...side))
        let color = rng.pick(hues)
        c.fill(x: rng.int(0...(side - w)), y: rng.int(0...(side - h)), width: w, height: h, color.color)
        return Sample(image: c, question: "What colour is the rectangle?", references: [color.name])
    }

    /// Each category drawn or not as a coin falls (`objectScene`); "Is there a CATEGORY in the
    /// image?", as POPE asks about COCO's categories. (Asking for a colour and a shape together
    /// was not learned even in four times `small`'s budget, while categories alone were within it:
    /// README, "Scale presets".)
    static let pope = BenchmarkTask(name: "pope", metric: .pope, fineGrained: false) { rng, side in
        // The conversation asks every category; with categories drawn independently, no answer
        // tells another (with two to four drawn, the last answers followed from the first ones).
        let (c, scene, _) = objectScene(&rng, side: side, categories: objects.filter { _ in rng.nextInt(below: 2) == 0 }.shuffled(using: &rng))
        let drawn = scene.map(\.category)
        let ask = rng.pick(objects)
        func turn(_ object: String) -> Turn { Turn("Is there a \(object) in the image?", drawn.contains(object) ? "yes" : "no") }
        let first = turn(ask)
        var s = Sample(image: c, question: first.question, references: [first.answer])
        s.label = first.answer == "yes"
        // Every category, in a random order, so that no question's place in the conversation tells its answer.
        s.followUps = objects.filter { $0 != ask }.shuffled(using: &rng).map(turn)
        return s
    }

    static let count = BenchmarkTask(name: "count", metric: .exactMatch, fineGrained: false) { rng, side in
        var c = Canvas(width: side, height: side)
        // Other shapes in a random number too: with a fixed number, the target's count would
        // be all the shapes less that number, an answer that needs no look at which is which.
        let target = rng.pick(shapes), n = rng.int(0...5), others = rng.int(1...4)
        let spots = places(n + others, size: 9, side: side, &rng)
        var drawn: [String] = []
        for (i, p) in spots.enumerated() {
            drawn.append(i < n ? target : rng.pick(shapes.filter { $0 != target }))
            drawShape(&c, drawn[i], x: p.x, y: p.y, size: 9, rng.pick(hues).color)
        }
        var s = Sample(image: c, question: "How many \(target)s are there?", references: [String(min(n, spots.count))])
        s.followUps = shapes.filter { $0 != target }.map { shape in Turn("How many \(shape)s are there?", String(drawn.filter { $0 == shape }.count)) }
        return s
    }

    /// One object; multiple choice about its colour, its category and where it is, in a random
    /// order, each question with options of its own. (Asking the same question with the options
    /// reordered let every turn after the first be answered from the first, without the image.)
    /// The answer is the option's text, and its letter scores too, as lmms-eval's MMBench
    /// evaluator infers the chosen option from either: answering a letter means finding the
    /// option that names what was seen, a lookup this from-scratch decoder did not learn even
    /// from text in thousands of steps (README, "Scale presets").
    static let attribute = BenchmarkTask(name: "attribute", metric: .exactMatch, fineGrained: false) { rng, side in
        var c = Canvas(width: side, height: side)
        let size = side / 4 + 2, quadrant = rng.nextInt(below: 4)
        let color = rng.pick(hues), category = rng.pick(objects)
        drawShape(&c, category, x: quadrant % 2 * side / 2 + rng.int(0...(side / 2 - size)), y: quadrant / 2 * side / 2 + rng.int(0...(side / 2 - size)),
                  size: size, color.color)
        // Each question with its answer's letter, which scores as well as the answer's text.
        func ask(_ question: String, _ truth: String, among others: [String]) -> (turn: Turn, letter: String) {
            let options = ([truth] + others.filter { $0 != truth }.shuffled(using: &rng).prefix(3)).shuffled(using: &rng), letters = ["A", "B", "C", "D"]
            let choices = zip(letters, options).map { "(\($0)) \($1)" }.joined(separator: " ")
            return (Turn("\(question) \(choices)", truth), letters[options.firstIndex(of: truth)!])
        }
        let asked = [ask("What color is the object?", color.name, among: hues.map(\.name)),
                     ask("What is the object?", category, among: objects),
                     ask("Where is the object?", quadrants[quadrant], among: quadrants)].shuffled(using: &rng)
        var s = Sample(image: c, question: asked[0].turn.question, references: [asked[0].turn.answer, asked[0].letter])
        s.followUps = asked.dropFirst().map(\.turn)
        return s
    }

    /// Two to four objects of different categories (`objectScene`); "Where is the CATEGORY?" asks
    /// for one's box. (Naming an object by its colour and shape together was not learned even in
    /// four times `small`'s budget, as POPE's pairs were not: README, "Scale presets".)
    static let grounding = groundingTask(name: "grounding", count: 2...4)
    /// Grounding with one object (a probe).
    static let locate = groundingTask(name: "locate", count: 1...1)

    /// Grounding's samples with `count` objects of different categories.
    private static func groundingTask(name: String, count: ClosedRange<Int>) -> BenchmarkTask {
        BenchmarkTask(name: name, metric: .grounding, fineGrained: false) { rng, side in
            let (c, scene, size) = objectScene(&rng, side: side, categories: Array(objects.shuffled(using: &rng).prefix(rng.int(count))))
            let scale = 100.0 / Double(side)
            let boxes = scene.map { o in
                Metrics.Box((Double(o.x) * scale).rounded(), (Double(o.y) * scale).rounded(),
                            (Double(o.x + size) * scale).rounded(), (Double(o.y + size) * scale).rounded())
            }
            let turns = zip(scene, boxes).map { o, b in
                Turn("Where is the \(o.category)? Answer [x1, y1, x2, y2] in 0 to 100.", "[\(Int(b.x1)), \(Int(b.y1)), \(Int(b.x2)), \(Int(b.y2))]")
            }
            var s = Sample(image: c, question: turns[0].question, references: [turns[0].answer])
            s.box = boxes[0]
            s.followUps = Array(turns.dropFirst())
            return s
        }
    }

    static let docParse = BenchmarkTask(name: "doc-parse", metric: .documentParsing, fineGrained: false) { rng, side in
        var c = Canvas(width: side, height: side)
        // Lines of words that fit the width.
        let lines = (0..<max(2, min(side / 10, 5))).map { _ -> String in
            var line = rng.pick(words + names)
            while true {
                let next = line + " " + rng.pick(words + names)
                if Canvas.textWidth(next) > side - 2 || rng.nextInt(below: 3) == 0 { return line }
                line = next
            }
        }
        for (i, line) in lines.enumerated() { c.text(line, x: 1, y: 2 + i * 10) }
        return Sample(image: c, question: "Transcribe the document.", references: [lines.joined(separator: " ")])
    }
}
