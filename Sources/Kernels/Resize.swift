/// 2-D resizing of channel-last grids [height, width, channels], as PyTorch's `interpolate`
/// computes it (bilinear with align_corners = false and no antialiasing; nearest).
public enum Resize {
    /// Source coordinate and blend weight along one axis (PyTorch's area_pixel_compute_source_index).
    private static func axisTaps(out: Int, in n: Int) -> [(lo: Int, hi: Int, w: Float)] {
        let scale = Double(n) / Double(out)
        return (0..<out).map { o in
            let src = max(0, (Double(o) + 0.5) * scale - 0.5)
            let lo = min(Int(src), n - 1)
            let hi = min(lo + 1, n - 1)
            return (lo, hi, Float(src - Double(lo)))
        }
    }

    /// For every output cell (raster order), its four input cells and their blend weights.
    private static func bilinearTaps(inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int) -> [[(cell: Int, weight: Float)]] {
        let rows = axisTaps(out: outHeight, in: inHeight), cols = axisTaps(out: outWidth, in: inWidth)
        var taps: [[(cell: Int, weight: Float)]] = []
        for ry in rows {
            for rx in cols {
                let top = ry.lo * inWidth, bottom = ry.hi * inWidth
                taps.append([(top + rx.lo, (1 - ry.w) * (1 - rx.w)), (top + rx.hi, (1 - ry.w) * rx.w),
                             (bottom + rx.lo, ry.w * (1 - rx.w)), (bottom + rx.hi, ry.w * rx.w)])
            }
        }
        return taps
    }

    public static func bilinearForward(x: FloatPtr, inHeight: Int, inWidth: Int, channels c: Int,
                                       y: FloatPtr, outHeight: Int, outWidth: Int) {
        let taps = bilinearTaps(inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth)
        for (o, cellTaps) in taps.enumerated() {
            let dst = y + o * c
            dst.update(repeating: 0, count: c)
            for (cell, w) in cellTaps {
                let src = x + cell * c
                for k in 0..<c { dst[k] += w * src[k] }
            }
        }
    }

    /// Accumulates dx with each output gradient spread over its four taps.
    public static func bilinearBackward(dy: FloatPtr, outHeight: Int, outWidth: Int, channels c: Int,
                                        dx: FloatPtr, inHeight: Int, inWidth: Int) {
        let taps = bilinearTaps(inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth)
        for (o, cellTaps) in taps.enumerated() {
            let src = dy + o * c
            for (cell, w) in cellTaps where w != 0 {
                let dst = dx + cell * c
                for k in 0..<c { dst[k] += w * src[k] }
            }
        }
    }

    /// For every output cell (raster order), the input cell it copies: PyTorch's 'nearest',
    /// source index floor(o · in/out) per axis.
    private static func nearestSources(inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int) -> [Int] {
        func tap(_ o: Int, out: Int, in n: Int) -> Int { min(o * n / out, n - 1) }
        return (0..<outHeight * outWidth).map { o in
            tap(o / outWidth, out: outHeight, in: inHeight) * inWidth + tap(o % outWidth, out: outWidth, in: inWidth)
        }
    }

    public static func nearestForward(x: FloatPtr, inHeight: Int, inWidth: Int, channels c: Int,
                                      y: FloatPtr, outHeight: Int, outWidth: Int) {
        let sources = nearestSources(inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth)
        for (o, cell) in sources.enumerated() { (y + o * c).update(from: x + cell * c, count: c) }
    }

    /// Accumulates dx: each input cell collects the gradients of the outputs that copied it.
    public static func nearestBackward(dy: FloatPtr, outHeight: Int, outWidth: Int, channels c: Int,
                                       dx: FloatPtr, inHeight: Int, inWidth: Int) {
        let sources = nearestSources(inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth)
        for (o, cell) in sources.enumerated() {
            let src = dy + o * c, dst = dx + cell * c
            for k in 0..<c { dst[k] += src[k] }
        }
    }
}
