import ArgumentParser
import Benchmarks
import Experiments
import Foundation
import Kernels
import Training

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The redundancy profile of a trained baseline: training-free mask-vv and skip-vattn from every layer, Score_fine Rel with paired intervals, and the earliest start layer that keeps a target Rel.",
        discussion: "Writes profile.csv and profile.svg (Rel against the start layer) to --out. The earliest start layer is the first from which the lower bound of Rel's 95 % paired interval stays at or above the target for every later start too; its FLOPs saved are counted at the run's own prompt and at the same depth of Vicuna-7B (5 crops of 24×24 vision tokens, 50 text tokens).")

    @Argument(help: "A baseline run directory written by 'squeeze train' (or a sweep's <store>/work/<model id>).")
    var directory: String
    @Option(help: "The Rel (as a fraction) a start layer must keep, by its interval's lower bound.")
    var targetRel = 0.99
    @Option(help: "Samples of each fine-grained benchmark, the same for every variant.")
    var samples = 100
    @Option(help: "train, val or test.")
    var split: Split = .val
    @Option(help: "Where to write profile.csv and profile.svg (default: the run directory).")
    var out: String?
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        try check(samples, in: 1...100_000, "--samples")
        try check(targetRel, in: 0...2, "--target-rel")
    }

    func run() throws {
        compute.apply()
        let trained = try reportingBadInput { try MultimodalRun.load(directory: directory) }
        let layers = trained.model.language.config.layers
        let progress = Progress(total: 1 + RedundancyProfile.families.count * layers, label: "profile")
        var done = 0
        let profile = try reportingBadInput {
            try RedundancyProfile(run: trained, samples: samples, split: split) { variant in
                done += 1
                progress.update(done: done, status: variant)
            }
        }
        let folder = out ?? directory
        try reportingBadInput {
            try DurableWrite.makeDirectory(folder)
            let (csv, svg) = profile.files(targetRel: targetRel)
            try DurableWrite.replaceAll([("profile.csv", csv), ("profile.svg", svg)].map {
                (path: (folder as NSString).appendingPathComponent($0.0), data: Data($0.1.utf8))
            })
        }
        print("\(directory): baseline Score_fine \(String(format: "%.1f", 100 * profile.baselineScoreFine)), \(samples) \(split.rawValue) samples of each fine-grained benchmark")
        print("variant       from  Rel %   95 % interval     FLOPs reduced")
        for p in profile.points {
            let rel = p.relative.estimate.isFinite ? String(format: "%5.1f  [%5.1f, %5.1f]", p.relative.estimate, p.relative.low, p.relative.high)
                                                   : "  undefined (baseline 0)"
            print(p.family.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "  %4d  ", p.start) + rel
                  + String(format: "   %5.1f %%", p.flopsReduced))
        }
        for family in RedundancyProfile.families {
            guard let p = profile.earliestStart(family, targetRel: targetRel) else {
                print(String(format: "%@: no start layer keeps Rel ≥ %.1f %% by its interval's lower bound", family, 100 * targetRel))
                continue
            }
            let paper = try reportingBadInput { try profile.atPaperShape(p) }
            print(String(format: "%@: earliest start keeping Rel ≥ %.1f %%: layer %d of %d (Rel %.1f [%.1f, %.1f]), %.1f %% fewer FLOPs here; at %@'s layer %d of 32, %.1f %% fewer",
                         family, 100 * targetRel, p.start, layers, p.relative.estimate, p.relative.low, p.relative.high, p.flopsReduced,
                         RedundancyProfile.paperModel, paper.start, paper.flopsReduced))
        }
        print("wrote \((folder as NSString).appendingPathComponent("profile.csv")) and profile.svg")
    }
}
