import Kernels

/// Where a variant applies: layers from L to the end, a half-open range, the last ρ·N layers,
/// or an explicit list.
public enum Schedule: Equatable, Sendable, CustomStringConvertible {
    case from(Int)
    case range(Range<Int>)
    case ratio(Double)
    case list([Int])

    /// The layers of an N-layer model this schedule names, in order.
    public func layers(of n: Int) -> [Int] {
        switch self {
        case let .from(l): return Array(max(0, l)..<max(l, n))
        case let .range(r): return Array(r)
        case let .ratio(rho): return Array(max(0, n - Int((rho * Double(n)).rounded()))..<n)
        case let .list(l): return l.sorted()
        }
    }

    public var description: String {
        switch self {
        case let .from(l): return "from:\(l)"
        case let .range(r): return "layers:\(r.lowerBound)..<\(r.upperBound)"
        case let .ratio(rho): return "ratio:\(rho)"
        case let .list(l): return "layers:" + l.map(String.init).joined(separator: ",")
        }
    }
}

/// The width of ProxyV's guided update: Squeeze's default d/4, the official code's (d/4 for
/// d ≥ 1024, d/2 below: `mlp=official`), or a given width (`mlp=W`).
public enum GuidedWidth: Equatable, Sendable {
    case quarter, official, fixed(Int)

    public func resolved(hidden d: Int) -> Int {
        switch self {
        case .quarter: d / 4
        case .official: d >= 1024 ? d / 4 : d / 2
        case let .fixed(w): w
        }
    }
}

/// The decoder variants of the paper, with their parameters. Widths of `nil` mean the default,
/// a quarter of the hidden size.
public enum Variant: Equatable, Sendable {
    /// The unchanged decoder.
    case baseline
    /// Vision→vision attention masked; a vision query keeps its own key and the text before the image.
    case maskVisionToVision
    /// Vision queries skipped: a vision token's attention update is the O-projection of its own
    /// value (`selfUpdate`), or nothing. Its K/V still serve the other tokens; FFN kept.
    case skipVisionAttention(selfUpdate: Bool)
    /// Vision tokens skip attention and FFN; a per-layer light MLP d→w→w→d updates them (w = 0: none).
    case skipVisionBlock(mlpWidth: Int?)
    /// Spatial ProxyV: proxies by bilinear resize with factor r per side, created at the first
    /// scheduled layer; full vision tokens updated by the guided vision MLP of width w.
    case proxyV(reduce: Int, width: GuidedWidth)
    /// Non-spatial ProxyV: n learned queries per crop make the proxies (see `ProxySource.learned`).
    case proxyVLearned(perCrop: Int, width: GuidedWidth)
    /// FastV: after layer k (counting from 1) keep the top (1 − r) of the vision tokens, ranked by
    /// the last question token's attention in that layer, averaged over heads.
    case fastV(afterLayer: Int, dropRatio: Double)
    /// VisionZip, before the decoder, per crop: keep the `dominant` vision tokens with the highest
    /// encoder saliency, and merge the rest into `contextual` tokens by similarity.
    case visionZip(dominant: Int, contextual: Int)
    /// PyramidDrop: after each stage-end layer (counting from 1) keep the given fraction of the
    /// original vision tokens, ranked as FastV ranks them.
    case pyramidDrop(afterLayers: [Int], keep: [Double])
    /// Skip-Vision: vision tokens skip the FFN, attention kept. With `dropKV` their keys and values
    /// leave the cache after the prefill: the tokens decoded later (answers) do not attend to them.
    case skipVisionFFN(dropKV: Bool)
    /// SAISA / NAAViT: vision tokens only supply keys and values (no query, attention output or
    /// FFN), from hidden states that each layer's own projector re-makes from the encoder's features.
    case kvOnly
    /// p-MoD: a learned per-layer router keeps the top fraction of the vision tokens (from `keep`
    /// at the first scheduled layer to `last` at the last, linearly or by a shifted cosine); they
    /// and the text run the layer, their FFN update scaled by the router weight; the others skip it.
    case mixtureOfDepths(keep: Double, last: Double, cosine: Bool)
    /// VTC-Bench's plain baseline: each crop's vision grid average-pooled R×R before the decoder.
    case downsample(reduce: Int)
}

/// A variant with the layers it applies to.
public struct ScheduledVariant: Equatable, Sendable {
    public let variant: Variant
    public let schedule: Schedule

    public init(variant: Variant, schedule: Schedule) { self.variant = variant; self.schedule = schedule }
}

/// A full variant specification: one or more scheduled variants, as written in the text form
///
///     spec     := part ('+' part)*
///     part     := name ['(' key=value (',' key=value)* ')'] ['@' schedule]
///     schedule := 'from:' L | 'layers:' a '..<' b | 'layers:' l (',' l)* | 'ratio:' ρ
///
/// Names and parameters: `baseline`; `mask-vv`; `skip-vattn(self=true|false)`;
/// `skip-vattn-ffn(mlp=W)` (W = 0: no light MLP); `proxyv(r=R, mlp=W)`; `proxyv-learned(n=N, mlp=W)`;
/// `fastv(k=K, r=R)`; `visionzip(dominant=D, contextual=C)`;
/// `pyramiddrop(layers=8/16/24, keep=0.5/0.25/0.125)`; `skip-vffn(dropkv=true|false)`; `kv-only`;
/// `mod(keep=ρ)` or `mod(keep=ρ₁/ρ₂, decay=linear|cos)`; `downsample(r=R)`. A part without a schedule applies to
/// every layer; the token-reduction baselines name their layers as parameters and take none.
/// Examples: `proxyv(r=4)@from:12`, `skip-vattn-ffn(mlp=256)@ratio:0.5`,
/// `mask-vv@layers:0..<4+skip-vattn@from:4`, `fastv(k=2,r=0.5)`,
/// `visionzip(dominant=54,contextual=10)+proxyv-learned(n=16)@from:8`.
public struct VariantSpec: Equatable, Sendable, CustomStringConvertible {
    public let parts: [ScheduledVariant]
    public let text: String

    public var description: String { text }

    public static let baseline = VariantSpec(parts: [ScheduledVariant(variant: .baseline, schedule: .from(0))], text: "baseline")

    private init(parts: [ScheduledVariant], text: String) { self.parts = parts; self.text = text }

    public init(_ text: String) throws {
        var parser = VariantParser(text: text)
        self.init(parts: try parser.parseSpec(), text: text)
    }
}

/// A variant text that does not parse: the column of the offending character and what was expected.
public struct VariantSyntaxError: InputError, Equatable {
    public let text: String
    public let column: Int      // 1-based
    public let expected: String

    /// The text shown: up to 60 characters either side of the column, elided beyond.
    public var description: String {
        let chars = Array(text), from = max(0, column - 61), to = min(chars.count, column + 60)
        let shown = (from > 0 ? "…" : "") + String(chars[from..<to]) + (to < chars.count ? "…" : "")
        let caret = column - 1 - from + (from > 0 ? 1 : 0)
        return "variant '\(VariantSyntaxError.elided(text))', column \(column): expected \(VariantSyntaxError.elided(expected, to: 300))\n  \(shown)\n  "
            + String(repeating: " ", count: caret) + "^"
    }

    /// A text for a message: whole up to `limit` characters, else its start and length.
    static func elided(_ text: String, to limit: Int = 120) -> String { text.count <= limit ? text : "\(text.prefix(limit - 20))… (\(text.count) characters)" }
}

struct VariantParser {
    let text: String
    private let chars: [Character]
    private var at = 0

    init(text: String) {
        self.text = text
        chars = Array(text)
    }

    mutating func parseSpec() throws -> [ScheduledVariant] {
        var parts = [try parsePart()]
        skipSpaces()
        while at < chars.count {
            try expect("+", "'+' and another variant, or the end")
            parts.append(try parsePart())
            skipSpaces()
        }
        return parts
    }

    private mutating func parsePart() throws -> ScheduledVariant {
        skipSpaces()
        let nameStart = at
        let name = word { $0.isLetter || $0.isNumber || $0 == "-" }
        guard !name.isEmpty else { throw failure(at, "a variant name (\(VariantParser.names.joined(separator: ", ")))") }
        var arguments: [(key: String, value: String, column: Int)] = []
        skipSpaces()
        if peek == "(" {
            at += 1
            repeat {
                skipSpaces()
                let keyColumn = at
                let key = word { $0.isLetter }
                guard !key.isEmpty else { throw failure(at, "a parameter name") }
                skipSpaces()
                try expect("=", "'=' after '\(key)'")
                skipSpaces()
                let value = word { $0.isLetter || $0.isNumber || $0 == "." || $0 == "/" }
                guard !value.isEmpty else { throw failure(at, "a value for '\(key)'") }
                guard !arguments.contains(where: { $0.key == key }) else { throw failure(keyColumn, "'\(key)' once (it is given twice)") }
                arguments.append((key, value, keyColumn))
                skipSpaces()
            } while consume(",")
            try expect(")", "',' or ')'")
        }
        let variant = try makeVariant(name, column: nameStart, arguments: arguments)
        skipSpaces()
        var schedule = Schedule.from(0)
        if peek == "@" {
            if variant.placesItself { throw failure(at, "no schedule: \(name) names its layers as parameters") }
            at += 1
            schedule = try parseSchedule()
        }
        return ScheduledVariant(variant: variant, schedule: schedule)
    }

    private mutating func parseSchedule() throws -> Schedule {
        skipSpaces()
        let kindColumn = at
        let kind = word { $0.isLetter }
        try expect(":", "':' after the schedule kind")
        switch kind {
        case "from": return .from(try integer())
        case "ratio":
            let column = at
            let text = word { $0.isNumber || $0 == "." }
            guard let rho = Double(text), rho >= 0, rho <= 1 else { throw failure(column, "a ratio between 0 and 1") }
            return .ratio(rho)
        case "layers":
            let first = try integer()
            if consume("..<") {
                let end = try integer()
                guard end >= first else { throw failure(at - 1, "an end layer not below \(first)") }
                return .range(first..<end)
            }
            var list = [first]
            while consume(",") { list.append(try integer()) }
            return .list(list)
        default:
            throw failure(kindColumn, "a schedule: from:L, layers:a..<b, layers:l,m,…, or ratio:ρ")
        }
    }

    static let names = ["baseline", "mask-vv", "skip-vattn", "skip-vattn-ffn", "proxyv", "proxyv-learned", "fastv", "pyramiddrop", "visionzip",
                        "skip-vffn", "kv-only", "mod", "downsample"]

    private func makeVariant(_ name: String, column: Int, arguments: [(key: String, value: String, column: Int)]) throws -> Variant {
        var args = Dictionary(arguments.map { ($0.key, ($0.value, $0.column)) }, uniquingKeysWith: { first, _ in first })
        func take(_ key: String) -> (String, Int)? { args.removeValue(forKey: key) }
        func integer(_ key: String) throws -> Int? {
            guard let (v, c) = take(key) else { return nil }
            guard let n = Int(v), n >= 0 else { throw failure(c, "a whole number for '\(key)', got '\(v)'") }
            return n
        }
        func fraction(_ text: String, _ key: String, _ c: Int) throws -> Double {
            guard let x = Double(text), x >= 0, x <= 1 else { throw failure(c, "a fraction between 0 and 1 for '\(key)', got '\(text)'") }
            return x
        }
        func guidedWidth() throws -> GuidedWidth {
            guard let (v, c) = take("mlp") else { return .quarter }
            if v == "official" { return .official }
            guard let w = Int(v), w >= 0 else { throw failure(c, "a whole number or 'official' for 'mlp', got '\(v)'") }
            return .fixed(w)
        }
        func boolean(_ key: String) throws -> Bool? {
            guard let (v, c) = take(key) else { return nil }
            guard let b = Bool(v) else { throw failure(c, "true or false for '\(key)', got '\(v)'") }
            return b
        }
        func required(_ key: String) throws -> (String, Int) {
            guard let value = take(key) else { throw failure(column, "parameter '\(key)' for \(name)") }
            return value
        }
        let variant: Variant
        switch name {
        case "baseline": variant = .baseline
        case "mask-vv": variant = .maskVisionToVision
        case "skip-vattn": variant = .skipVisionAttention(selfUpdate: try boolean("self") ?? true)
        case "skip-vffn": variant = .skipVisionFFN(dropKV: try boolean("dropkv") ?? false)
        case "kv-only": variant = .kvOnly
        case "mod":
            let (k, kc) = take("keep") ?? ("0.5", column)
            let fractions = try k.split(separator: "/", omittingEmptySubsequences: false).map { try fraction(String($0), "keep", kc) }
            guard (1...2).contains(fractions.count) else { throw failure(kc, "keep=ρ or keep=ρ₁/ρ₂ (first and last scheduled layer), got '\(k)'") }
            var cosine = false
            if let (v, c) = take("decay") {
                guard v == "linear" || v == "cos" else { throw failure(c, "linear or cos for 'decay', got '\(v)'") }
                cosine = v == "cos"
            }
            variant = .mixtureOfDepths(keep: fractions[0], last: fractions.last!, cosine: cosine)
        case "downsample":
            let r = try integer("r") ?? 2
            if r < 1 { throw failure(column, "a pooling factor r ≥ 1") }
            variant = .downsample(reduce: r)
        case "skip-vattn-ffn": variant = .skipVisionBlock(mlpWidth: try integer("mlp"))
        case "proxyv":
            let r = try integer("r") ?? 4
            if r < 1 { throw failure(column, "a reduce factor r ≥ 1") }
            variant = .proxyV(reduce: r, width: try guidedWidth())
        case "proxyv-learned": variant = .proxyVLearned(perCrop: try integer("n") ?? 36, width: try guidedWidth())
        case "fastv":
            let (k, kc) = try required("k"), (r, rc) = try required("r")
            guard let layer = Int(k), layer >= 1 else { throw failure(kc, "a layer number ≥ 1 for 'k', got '\(k)'") }
            variant = .fastV(afterLayer: layer, dropRatio: try fraction(r, "r", rc))
        case "visionzip":
            variant = .visionZip(dominant: try integer("dominant") ?? 54, contextual: try integer("contextual") ?? 10)
        case "pyramiddrop":
            let (l, lc) = take("layers") ?? ("8/16/24", column), (k, kc) = take("keep") ?? ("0.5/0.25/0.125", column)
            let layers = try l.split(separator: "/").map { part -> Int in
                guard let n = Int(part), n >= 1 else { throw failure(lc, "layer numbers ≥ 1 separated by '/', got '\(l)'") }
                return n
            }
            let keep = try k.split(separator: "/").map { try fraction(String($0), "keep", kc) }
            guard layers.count == keep.count, layers == layers.sorted(), Set(layers).count == layers.count else {
                throw failure(lc, "as many keep fractions as increasing stage-end layers")
            }
            variant = .pyramidDrop(afterLayers: layers, keep: keep)
        default: throw failure(column, "a variant name (\(VariantParser.names.joined(separator: ", "))), got '\(name)'")
        }
        if let (key, (_, c)) = args.min(by: { $0.value.1 < $1.value.1 }) {
            throw failure(c, "no parameter '\(key)' for \(name)")
        }
        return variant
    }

    // MARK: characters

    private var peek: Character? { at < chars.count ? chars[at] : nil }

    private mutating func skipSpaces() { while peek == " " { at += 1 } }

    private mutating func word(_ allowed: (Character) -> Bool) -> String {
        let start = at
        while let c = peek, allowed(c) { at += 1 }
        return String(chars[start..<at])
    }

    private mutating func integer() throws -> Int {
        skipSpaces()
        let start = at
        guard let n = Int(word { $0.isNumber }) else { throw failure(start, "a layer number") }
        skipSpaces()
        return n
    }

    private mutating func consume(_ s: String) -> Bool {
        let c = Array(s)
        guard at + c.count <= chars.count, Array(chars[at..<at + c.count]) == c else { return false }
        at += c.count
        return true
    }

    private mutating func expect(_ s: String, _ what: String) throws {
        guard consume(s) else { throw failure(at, what) }
    }

    private func failure(_ index: Int, _ expected: String) -> VariantSyntaxError {
        VariantSyntaxError(text: text, column: index + 1, expected: expected)
    }
}
