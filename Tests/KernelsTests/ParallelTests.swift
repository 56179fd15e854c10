import Foundation
import Kernels
import XCTest

final class ParallelTests: XCTestCase {
    func testEveryIndexRunsOnceAndBLASThreadsAreRestored() {
        let threads = BLAS.threads, count = 1000
        var runs = [Int](repeating: 0, count: count), seenThreads = [Int](repeating: 0, count: count)
        let lock = NSLock()
        Parallel.forEach(count) { i, worker in
            XCTAssert((0..<threads).contains(worker))
            lock.withLock { runs[i] += 1; seenThreads[i] = BLAS.threads }
        }
        XCTAssertEqual(runs, Array(repeating: 1, count: count))
        XCTAssertEqual(Set(seenThreads), [1], "BLAS runs single-threaded inside the workers")
        XCTAssertEqual(BLAS.threads, threads)
        XCTAssertEqual(Parallel.map(count) { $0 * $0 }, (0..<count).map { $0 * $0 })
    }

    /// Indices are taken as workers come free, not dealt in advance: while one worker is held by
    /// a slow first index, the others run the rest.
    func testASlowIndexDoesNotHoldUpTheOthers() throws {
        try XCTSkipIf(Parallel.workers < 2, "needs two cores")
        let count = 40, lock = NSLock()
        var workerOf = [Int](repeating: -1, count: count)
        Parallel.forEach(count) { i, worker in
            if i == 0 { Thread.sleep(forTimeInterval: 1) }
            lock.withLock { workerOf[i] = worker }
        }
        XCTAssertEqual(workerOf.filter { $0 == workerOf[0] }.count, 1, "the worker of the slow index ran only it")
    }
}
