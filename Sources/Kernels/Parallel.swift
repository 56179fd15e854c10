import Dispatch

/// Work split over the cores that the caller may use, which is `BLAS.threads`: a caller that
/// already runs in parallel sets it to 1, so nested parallelism never oversubscribes the machine.
public enum Parallel {
    public static var workers: Int { max(1, BLAS.threads) }

    /// Calls body(index, worker) for every index in 0..<count. Index i runs on worker i % workers,
    /// so the split is deterministic. While the workers run, BLAS runs single-threaded in each.
    public static func forEach(_ count: Int, _ body: (_ index: Int, _ worker: Int) -> Void) {
        let n = workers
        guard n > 1, count > 1 else {
            for i in 0..<count { body(i, 0) }
            return
        }
        BLAS.threads = 1
        defer { BLAS.threads = n }
        DispatchQueue.concurrentPerform(iterations: min(n, count)) { worker in
            for i in Swift.stride(from: worker, to: count, by: n) { body(i, worker) }
        }
    }

    /// [body(0), body(1), …] computed as `forEach` deals the indices.
    public static func map<T>(_ count: Int, _ body: (_ index: Int) -> T) -> [T] {
        var results = [T?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { slots in   // each index fills its own slot
            forEach(count) { i, _ in slots[i] = body(i) }
        }
        return results.map { $0! }
    }
}
