/// 2-D resizing of channel-last grids [height, width, channels], as PyTorch's `interpolate`
/// computes it (bilinear with align_corners = false and no antialiasing; nearest).
public enum Resize {
    /// Source coordinate and blend weight along one axis (PyTorch's area_pixel_compute_source_index).
    private static func bilinearTaps(out: Int, in n: Int) -> [(lo: Int, hi: Int, w: Float)] {
        let scale = Double(n) / Double(out)
        return (0..<out).map { o in
            let src = max(0, (Double(o) + 0.5) * scale - 0.5)
            let lo = min(Int(src), n - 1)
            let hi = min(lo + 1, n - 1)
            return (lo, hi, Float(src - Double(lo)))
        }
    }

    public static func bilinearForward(x: FloatPtr, inHeight: Int, inWidth: Int, channels c: Int,
                                       y: FloatPtr, outHeight: Int, outWidth: Int) {
        let rows = bilinearTaps(out: outHeight, in: inHeight), cols = bilinearTaps(out: outWidth, in: inWidth)
        for (oy, ry) in rows.enumerated() {
            for (ox, rx) in cols.enumerated() {
                let dst = y + (oy * outWidth + ox) * c
                let w00 = (1 - ry.w) * (1 - rx.w), w01 = (1 - ry.w) * rx.w
                let w10 = ry.w * (1 - rx.w), w11 = ry.w * rx.w
                let p00 = x + (ry.lo * inWidth + rx.lo) * c, p01 = x + (ry.lo * inWidth + rx.hi) * c
                let p10 = x + (ry.hi * inWidth + rx.lo) * c, p11 = x + (ry.hi * inWidth + rx.hi) * c
                for k in 0..<c { dst[k] = w00 * p00[k] + w01 * p01[k] + w10 * p10[k] + w11 * p11[k] }
            }
        }
    }

    /// Accumulates dx with each output gradient spread over its four taps.
    public static func bilinearBackward(dy: FloatPtr, outHeight: Int, outWidth: Int, channels c: Int,
                                        dx: FloatPtr, inHeight: Int, inWidth: Int) {
        let rows = bilinearTaps(out: outHeight, in: inHeight), cols = bilinearTaps(out: outWidth, in: inWidth)
        for (oy, ry) in rows.enumerated() {
            for (ox, rx) in cols.enumerated() {
                let src = dy + (oy * outWidth + ox) * c
                let taps: [(Int, Int, Float)] = [(ry.lo, rx.lo, (1 - ry.w) * (1 - rx.w)), (ry.lo, rx.hi, (1 - ry.w) * rx.w),
                                                 (ry.hi, rx.lo, ry.w * (1 - rx.w)), (ry.hi, rx.hi, ry.w * rx.w)]
                for (iy, ix, w) in taps where w != 0 {
                    let dst = dx + (iy * inWidth + ix) * c
                    for k in 0..<c { dst[k] += w * src[k] }
                }
            }
        }
    }

    /// PyTorch's 'nearest': source index floor(o · in/out).
    private static func nearestTap(_ o: Int, out: Int, in n: Int) -> Int { min(o * n / out, n - 1) }

    public static func nearestForward(x: FloatPtr, inHeight: Int, inWidth: Int, channels c: Int,
                                      y: FloatPtr, outHeight: Int, outWidth: Int) {
        for oy in 0..<outHeight {
            let iy = nearestTap(oy, out: outHeight, in: inHeight)
            for ox in 0..<outWidth {
                let ix = nearestTap(ox, out: outWidth, in: inWidth)
                (y + (oy * outWidth + ox) * c).update(from: x + (iy * inWidth + ix) * c, count: c)
            }
        }
    }

    /// Accumulates dx: each input cell collects the gradients of the outputs that copied it.
    public static func nearestBackward(dy: FloatPtr, outHeight: Int, outWidth: Int, channels c: Int,
                                       dx: FloatPtr, inHeight: Int, inWidth: Int) {
        for oy in 0..<outHeight {
            let iy = nearestTap(oy, out: outHeight, in: inHeight)
            for ox in 0..<outWidth {
                let ix = nearestTap(ox, out: outWidth, in: inWidth)
                let src = dy + (oy * outWidth + ox) * c, dst = dx + (iy * inWidth + ix) * c
                for k in 0..<c { dst[k] += src[k] }
            }
        }
    }
}
