import Dispatch
import Foundation

/// A request from outside to stop: SIGUSR1 (Slurm's warning before a job's time limit) or
/// SIGTERM (`scancel`, preemption). While a training runs, the request stops it at the end of the
/// step, after a checkpoint (`MultimodalRun.train` throws `TrainingStopped`); outside a training
/// there is nothing to save — run files are written whole or not at all — so the process exits
/// at once with `exitStatus`.
public final class StopRequest: @unchecked Sendable {
    public static let shared = StopRequest()
    /// The status of a process that stopped on request; the run resumes when started again.
    public static let exitStatus: Int32 = 76

    private let lock = NSLock()
    private var requested = false, training = 0
    private var sources: [DispatchSourceSignal] = []

    /// Catches `signals` from now on (a worker calls this once).
    public func install(signals: [Int32] = [SIGUSR1, SIGTERM]) {
        for number in signals {
            signal(number, SIG_IGN)   // delivered to the dispatch source instead of killing the process
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                lock.lock()
                requested = true
                let stopsAtStep = training > 0
                lock.unlock()
                let name = number == SIGUSR1 ? "SIGUSR1" : number == SIGTERM ? "SIGTERM" : "signal \(number)"
                FileHandle.standardError.write(Data((stopsAtStep ? "\(name): stopping after this step's checkpoint\n" : "\(name): stopping\n").utf8))
                if !stopsAtStep { _exit(StopRequest.exitStatus) }
            }
            source.resume()
            sources.append(source)
        }
    }

    public var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return requested }

    /// Runs a training, during which a request waits for the step's end instead of exiting.
    func whileTraining<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); training += 1; lock.unlock()
        defer { lock.lock(); training -= 1; lock.unlock() }
        return try body()
    }
}

/// A training stopped on request after writing its checkpoint at `step`.
public struct TrainingStopped: Error, CustomStringConvertible {
    public let directory: String, step: Int, totalSteps: Int
    public var description: String { "\(directory): stopped on request at step \(step) of \(totalSteps), checkpoint written; run again, it resumes from there" }
}
