import Dispatch
import Synchronization

/// Work split over the cores that the caller may use, which is `BLAS.threads`: a caller that
/// already runs in parallel sets it to 1, so nested parallelism never oversubscribes the machine.
public enum Parallel {
    public static var workers: Int { max(1, BLAS.threads) }

    /// Calls body(index, worker) for every index in 0..<count. Each worker takes the next index
    /// not yet taken, so a slow index does not hold up the ones dealt after it; which worker runs
    /// an index varies from run to run, so a body's result may depend on its index only (`worker`
    /// names scratch space). While the workers run, BLAS runs single-threaded in each.
    public static func forEach(_ count: Int, _ body: (_ index: Int, _ worker: Int) -> Void) {
        let n = workers
        guard n > 1, count > 1 else {
            for i in 0..<count { body(i, 0) }
            return
        }
        BLAS.threads = 1
        defer { BLAS.threads = n }
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: min(n, count)) { worker in
            while case let i = next.wrappingAdd(1, ordering: .relaxed).oldValue, i < count { body(i, worker) }
        }
    }

    /// [body(0), body(1), …], the indices dealt as `forEach` deals them.
    public static func map<T>(_ count: Int, _ body: (_ index: Int) -> T) -> [T] {
        var results = [T?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { slots in   // each index fills its own slot
            forEach(count) { i, _ in slots[i] = body(i) }
        }
        return results.map { $0! }
    }
}
