import Foundation

/// The public evaluators' metrics, as lmms-eval and the benchmarks' own scripts compute them.
public enum Metrics {
    // MARK: edit distance

    /// Levenshtein distance between two strings, by Unicode scalar.
    public static func levenshtein(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
        var previous = Array(0...y.count), current = previous
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }

    /// Levenshtein distance over the longer length: 0 for equal strings, 1 for nothing in common.
    public static func normalizedEditDistance(_ a: String, _ b: String) -> Double {
        let longest = max(a.unicodeScalars.count, b.unicodeScalars.count)
        return longest == 0 ? 0 : Double(levenshtein(a, b)) / Double(longest)
    }

    // MARK: DocVQA, InfoVQA

    /// Average Normalised Levenshtein Similarity for one question: the best over the references of
    /// 1 − NL, where NL is the normalised edit distance after lower-casing and collapsing white
    /// space, and a similarity below 1 − threshold counts as 0.
    public static func anls(prediction: String, references: [String], threshold: Double = 0.5) -> Double {
        func clean(_ s: String) -> String { s.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        let p = clean(prediction)
        return references.map { reference in
            let distance = normalizedEditDistance(p, clean(reference))
            return distance < threshold ? 1 - distance : 0
        }.max() ?? 0
    }

    // MARK: ChartQA

    /// Relaxed accuracy: a number within `tolerance` (relative) of a numeric reference, otherwise
    /// a case-insensitive exact match. "12%" reads as 0.12, as ChartQA's evaluator reads it.
    public static func relaxedAccuracy(prediction: String, references: [String], tolerance: Double = 0.05) -> Double {
        func number(_ s: String) -> Double? {
            let t = s.trimmingCharacters(in: .whitespaces)
            if t.hasSuffix("%") { return Double(t.dropLast()).map { $0 / 100 } }
            return Double(t)
        }
        let p = prediction.trimmingCharacters(in: .whitespaces)
        for reference in references {
            if let target = number(reference), let value = number(p) {
                if target == 0 ? value == 0 : abs(value - target) / abs(target) <= tolerance { return 1 }
            } else if p.lowercased() == reference.trimmingCharacters(in: .whitespaces).lowercased() {
                return 1
            }
        }
        return 0
    }

    // MARK: TextVQA (VQA accuracy)

    private static let punctuation: [Character] = [";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
    private static let numberWords = ["none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                                      "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"]
    private static let articles: Set<String> = ["a", "an", "the"]
    private static let contractions = ["dont": "don't", "doesnt": "doesn't", "didnt": "didn't", "isnt": "isn't", "arent": "aren't",
                                       "wasnt": "wasn't", "werent": "weren't", "cant": "can't", "couldnt": "couldn't",
                                       "wont": "won't", "wouldnt": "wouldn't", "shouldnt": "shouldn't", "hasnt": "hasn't",
                                       "havent": "haven't", "im": "i'm", "ive": "i've", "youre": "you're", "theyre": "they're",
                                       "thats": "that's", "whats": "what's", "lets": "let's", "its": "it's"]

    /// The standard VQA answer normalisation (EvalAI): punctuation removed or turned into spaces,
    /// periods not followed by a digit removed, lower case, number words to digits, articles
    /// dropped, common contractions restored.
    public static func vqaNormalize(_ answer: String) -> String {
        let text = answer.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " ")
            .trimmingCharacters(in: .whitespaces)
        let digitCommaDigit = text.range(of: #"\d,\d"#, options: .regularExpression) != nil
        var out = text
        for p in punctuation {
            let spaced = text.contains("\(p) ") || text.contains(" \(p)")
            out = out.replacingOccurrences(of: String(p), with: spaced || digitCommaDigit ? "" : " ")
        }
        out = out.replacingOccurrences(of: #"\.(?!\d)"#, with: "", options: .regularExpression)
        let words = out.lowercased().split(separator: " ").map { numberWords[String($0)] ?? String($0) }
            .filter { !articles.contains($0) }.map { contractions[$0] ?? $0 }
        return words.joined(separator: " ")
    }

    /// VQA accuracy over (usually 10) reference answers: for each leave-one-out subset,
    /// min(1, matches among the others / 3), averaged, after `vqaNormalize`.
    public static func vqaAccuracy(prediction: String, references: [String]) -> Double {
        guard !references.isEmpty else { return 0 }
        let p = vqaNormalize(prediction), refs = references.map(vqaNormalize)
        let scores = refs.indices.map { i -> Double in
            let matches = refs.indices.filter { $0 != i && refs[$0] == p }.count
            return min(1, Double(matches) / 3)
        }
        return scores.reduce(0, +) / Double(scores.count)
    }

    // MARK: OCRBench, counting, multiple choice

    /// OCRBench's rule: 1 if a reference appears in the prediction, ignoring case and surrounding space.
    public static func substringMatch(prediction: String, references: [String]) -> Double {
        let p = prediction.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
        return references.contains { r in
            let ref = r.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
            return !ref.isEmpty && p.contains(ref)
        } ? 1 : 0
    }

    /// Exact match after `vqaNormalize` (counting answers, multiple-choice letters).
    public static func exactMatch(prediction: String, references: [String]) -> Double {
        let p = vqaNormalize(prediction)
        return references.contains { vqaNormalize($0) == p } ? 1 : 0
    }

    // MARK: POPE

    public struct BinaryScores: Equatable, Sendable {
        public let accuracy, precision, recall, f1, yesRatio: Double
    }

    /// POPE's reading of an answer: "no" if it contains no, not or a negation first, else "yes"
    /// if it says yes; anything else counts as no.
    public static func popeSaysYes(_ answer: String) -> Bool {
        let words = answer.lowercased().split { !$0.isLetter }.map(String.init)
        if words.contains(where: { $0 == "no" || $0 == "not" }) { return false }
        return words.contains("yes")
    }

    /// Accuracy, precision, recall and F1 with "yes" as the positive class, and the yes-ratio.
    public static func pope(predictions: [String], labels: [Bool]) -> BinaryScores {
        precondition(predictions.count == labels.count)
        var sums = [Double](repeating: 0, count: 4)
        for (p, l) in zip(predictions, labels) {
            for (i, x) in popeCounts(prediction: p, label: l).enumerated() { sums[i] += x }
        }
        return pope(confusion: sums)
    }

    /// What one answer adds to POPE's confusion counts: [true positive, false positive, false
    /// negative, true negative], "yes" the positive class.
    public static func popeCounts(prediction: String, label: Bool) -> [Double] {
        let said = popeSaysYes(prediction)
        return [said && label, said && !label, !said && label, !said && !label].map { $0 ? 1 : 0 }
    }

    /// POPE's scores from summed `popeCounts`.
    public static func pope(confusion c: [Double]) -> BinaryScores {
        let (tp, fp, fn, tn) = (c[0], c[1], c[2], c[3]), n = max(tp + fp + fn + tn, 1)
        let precision = tp + fp == 0 ? 0 : tp / (tp + fp), recall = tp + fn == 0 ? 0 : tp / (tp + fn)
        return BinaryScores(accuracy: (tp + tn) / n, precision: precision, recall: recall,
                            f1: precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall),
                            yesRatio: (tp + fp) / n)
    }

    // MARK: grounding

    public struct Box: Equatable, Sendable {
        public let x1, y1, x2, y2: Double
        public init(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double) { self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2 }
        var area: Double { max(0, x2 - x1) * max(0, y2 - y1) }
    }

    /// The first four numbers of an answer, read as a box [x1, y1, x2, y2]; nil without four.
    public static func parseBox(_ answer: String) -> Box? {
        let numbers = answer.split { !($0.isNumber || $0 == "." || $0 == "-") }.compactMap { Double($0) }
        return numbers.count >= 4 ? Box(numbers[0], numbers[1], numbers[2], numbers[3]) : nil
    }

    public static func iou(_ a: Box, _ b: Box) -> Double {
        let inter = Box(max(a.x1, b.x1), max(a.y1, b.y1), min(a.x2, b.x2), min(a.y2, b.y2)).area
        let union = a.area + b.area - inter
        return union > 0 ? inter / union : 0
    }

    /// RefCOCO's accuracy: 1 when the predicted box overlaps the reference with IoU ≥ 0.5.
    public static func groundingAccuracy(prediction: String, reference: Box) -> Double {
        guard let box = parseBox(prediction) else { return 0 }
        return iou(box, reference) >= 0.5 ? 1 : 0
    }

    // MARK: document parsing

    /// Corpus BLEU-4 (Papineni et al.): clipped n-gram precisions for n = 1…4 over all
    /// candidates, geometric mean with equal weights, brevity penalty; whitespace tokens, no
    /// smoothing (0 when some order has no match).
    public static func bleu4(candidates: [String], references: [String]) -> Double {
        precondition(candidates.count == references.count)
        var sums = [Double](repeating: 0, count: 10)
        for (c, r) in zip(candidates, references) {
            for (i, x) in bleu4Counts(candidate: c, reference: r).enumerated() { sums[i] += x }
        }
        return bleu4(counts: sums)
    }

    /// What one candidate adds to corpus BLEU-4: its clipped n-gram matches and n-gram counts
    /// for n = 1…4, then its length and its reference's.
    public static func bleu4Counts(candidate: String, reference: String) -> [Double] {
        let cw = candidate.split(whereSeparator: \.isWhitespace).map(String.init), rw = reference.split(whereSeparator: \.isWhitespace).map(String.init)
        var matched = [Double](repeating: 0, count: 4), total = [Double](repeating: 0, count: 4)
        for n in 1...4 where cw.count >= n {
            func grams(_ w: [String]) -> [[String]: Int] {
                w.count < n ? [:] : Dictionary((0...(w.count - n)).map { (Array(w[$0..<$0 + n]), 1) }, uniquingKeysWith: +)
            }
            let cg = grams(cw), rg = grams(rw)
            matched[n - 1] = Double(cg.reduce(0) { $0 + min($1.value, rg[$1.key] ?? 0) })
            total[n - 1] = Double(cw.count - n + 1)
        }
        return matched + total + [Double(cw.count), Double(rw.count)]
    }

    /// Corpus BLEU-4 from the candidates' summed `bleu4Counts`.
    public static func bleu4(counts: [Double]) -> Double {
        let (matched, total, candidateLength, referenceLength) = (counts[0..<4], counts[4..<8], counts[8], counts[9])
        guard candidateLength > 0, !zip(matched, total).contains(where: { $0 == 0 || $1 == 0 }) else { return 0 }
        let logPrecision = zip(matched, total).reduce(0.0) { $0 + log($1.0 / $1.1) } / 4
        let brevity = candidateLength >= referenceLength ? 1 : exp(1 - referenceLength / candidateLength)
        return brevity * exp(logPrecision)
    }
}
