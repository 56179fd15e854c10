import CBLAS
import Synchronization

/// The one door to matrix products: every product in Squeeze goes through `gemm`, which calls
/// OpenBLAS's `cblas_sgemm` (row-major).
public enum BLAS {
    /// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, all row-major with leading dimensions.
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        executedFLOPs.add(2 * m * n * k, ordering: .relaxed)
        if isRecording.load(ordering: .relaxed) {
            let call = Product(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, threads: threads)
            recorded.withLock { $0.append(call) }
        }
        guard k > 0 else {
            if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            else if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// FLOPs (2 per multiply-accumulate) of every product run so far, so that analytic counts
    /// can be checked against what actually executed.
    public static let executedFLOPs = Atomic<Int>(0)

    /// The shape of one product, its leading dimensions and the BLAS threads it ran on.
    public struct Product: Sendable {
        public let transA, transB: Bool
        public let m, n, k, lda, ldb, ldc, threads: Int
    }

    private static let isRecording = Atomic<Bool>(false)
    private static let recorded = Mutex<[Product]>([])

    /// The products `body` issues, in order (benchmarks replay them as their yardstick).
    public static func recordProducts(_ body: () -> Void) -> [Product] {
        recorded.withLock { $0 = [] }
        isRecording.store(true, ordering: .relaxed)
        body()
        isRecording.store(false, ordering: .relaxed)
        return recorded.withLock { $0 }
    }

    /// The CPU kernel OpenBLAS chose (e.g. "Haswell", "SkylakeX"): sgemm rounds differently on each.
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// OpenBLAS's worker-thread count. Set it explicitly: the default depends on the machine.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
