/// The kinds of token group in a multimodal prefill.
public enum GroupKind: String, CaseIterable, Codable, Sendable, Comparable {
    case system, vision, newline, question, answer, proxy

    public static func < (a: GroupKind, b: GroupKind) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// Text groups: everything the language model reads as words.
    public static let text: Set<GroupKind> = [.system, .question, .answer]
}

/// One token of a layout: its group, the crop it belongs to (vision, newline, proxy), its index
/// within that group (the raster index of a vision patch or proxy), and its position id.
public struct LayoutToken: Equatable, Hashable, Sendable {
    public let kind: GroupKind
    public let crop: Int
    public let index: Int
    public let position: Int32

    public init(kind: GroupKind, crop: Int = -1, index: Int, position: Int32) {
        self.kind = kind; self.crop = crop; self.index = index; self.position = position
    }
}

/// The prefill sequence as named token groups: `system` text, then for each crop its G×G vision
/// patches in raster order followed by one `newline`, then `question` and `answer` text. Every
/// token keeps its original position id; the order of `tokens` is only how rows are packed in
/// memory, and nothing computed may depend on it.
public struct TokenLayout: Equatable, Sendable {
    public let grid: Int
    public let crops: Int
    public let systemLength: Int, questionLength: Int, answerLength: Int
    public let tokens: [LayoutToken]

    public init(grid: Int, crops: Int, system: Int, question: Int, answer: Int = 0) {
        precondition(grid > 0 && crops >= 0 && system >= 0 && question >= 0 && answer >= 0)
        self.grid = grid; self.crops = crops
        systemLength = system; questionLength = question; answerLength = answer
        var tokens: [LayoutToken] = []
        var position: Int32 = 0
        func add(_ kind: GroupKind, crop: Int = -1, index: Int) {
            tokens.append(LayoutToken(kind: kind, crop: crop, index: index, position: position))
            position += 1
        }
        for i in 0..<system { add(.system, index: i) }
        for c in 0..<crops {
            for i in 0..<grid * grid { add(.vision, crop: c, index: i) }
            add(.newline, crop: c, index: 0)
        }
        for i in 0..<question { add(.question, index: i) }
        for i in 0..<answer { add(.answer, index: i) }
        self.tokens = tokens
    }

    /// Tokens fed after a prefill, a decode step's: no image, just these (answer) tokens.
    public init(continuing tokens: [LayoutToken], grid: Int) {
        self.grid = grid; crops = 0
        systemLength = 0; questionLength = 0; answerLength = tokens.count
        self.tokens = tokens
    }

    private init(copying other: TokenLayout, tokens: [LayoutToken]) {
        grid = other.grid; crops = other.crops
        systemLength = other.systemLength; questionLength = other.questionLength; answerLength = other.answerLength
        self.tokens = tokens
    }

    /// The same tokens packed in another order: `order[i]` is the current row that becomes row i.
    public func packed(in order: [Int]) -> TokenLayout {
        precondition(order.sorted() == Array(tokens.indices), "a packing order is a permutation of the rows")
        return TokenLayout(copying: self, tokens: order.map { tokens[$0] })
    }

    public var count: Int { tokens.count }
    public var positions: [Int32] { tokens.map(\.position) }

    /// Rows of the tokens of the given kinds, in memory order.
    public func rows(of kinds: Set<GroupKind>) -> [Int] { tokens.indices.filter { kinds.contains(tokens[$0].kind) } }

    /// Rows of one crop's vision tokens, in raster order (all G² of them unless some were
    /// reduced away).
    public func visionRows(crop: Int) -> [Int] {
        tokens.indices.filter { tokens[$0].kind == .vision && tokens[$0].crop == crop }.sorted { tokens[$0].index < tokens[$1].index }
    }

    /// The first position id of the image span (the first vision token's).
    public var imageStart: Int32 { Int32(systemLength) }

    /// Proxy tokens for spatial ProxyV with reduce factor r, or for `perCrop` learned queries:
    /// crop by crop in raster order, with the first positions of the image span, as the
    /// reference code numbers them.
    public func proxyTokens(perCrop: Int) -> [LayoutToken] {
        (0..<crops * perCrop).map { i in
            LayoutToken(kind: .proxy, crop: i / perCrop, index: i % perCrop, position: imageStart + Int32(i))
        }
    }

    /// This layout with the given tokens appended (proxies are added this way).
    public func appending(_ extra: [LayoutToken]) -> TokenLayout { TokenLayout(copying: self, tokens: tokens + extra) }

    /// This layout keeping only the given rows, in the given order (token reduction).
    public func keeping(rows: [Int]) -> TokenLayout { TokenLayout(copying: self, tokens: rows.map { tokens[$0] }) }
}
