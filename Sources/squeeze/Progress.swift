import Foundation

/// Progress of long work: a redrawn bar on a terminal, plain log lines (about 20) elsewhere.
struct Progress {
    let total: Int
    let label: String
    private let interactive = isatty(STDERR_FILENO) != 0
    private let started = Date()

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    func update(done: Int, status: String) {
        let elapsed = Date().timeIntervalSince(started)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        if interactive {
            let width = 30, filled = width * done / max(total, 1)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            write("\r\(label) [\(bar)] \(done)/\(total) \(status) \(String(format: "%.0fs, ETA %.0fs", elapsed, eta))\u{1B}[K")
            if done == total { write("\n") }
        } else if done == total || done % max(1, total / 20) == 0 {
            write("\(label) \(done)/\(total) \(status) \(String(format: "%.1fs, ETA %.0fs", elapsed, eta))\n")
        }
    }

    private func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
