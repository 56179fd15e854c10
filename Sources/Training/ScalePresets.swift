import Decoder

/// Named scales for multimodal runs: the decoder's shape, the vision geometry and the recipe
/// together, tuned to a time budget on a 2-core CPU. `tiny` is for tests (seconds), `small` the
/// default (a baseline in at most 15 minutes), `medium` for real studies (an hour or more).
extension MultimodalRunConfig {
    public static let scalePresets = ["tiny", "small", "medium"]

    /// The preset's configuration of a run of `variant`; nil for an unknown name.
    public static func preset(_ name: String, variant: String = "baseline", seed: UInt64 = 1) -> MultimodalRunConfig? {
        var c: MultimodalRunConfig
        switch name {
        case "tiny":
            c = MultimodalRunConfig(preset: "tiny", variant: variant, stage1Steps: 20, stage2Steps: 80, batchSize: 8, checkpointEvery: 50, seed: seed)
            (c.grid, c.crops, c.stage1LearningRate, c.stage2LearningRate) = (4, 5, 3e-3, 3e-3)
        case "small":
            // Patches as wide as a character's pitch (6 px), so each character is centred in its own
            // patch. The decoder is narrow (128, FFN 256) and the batches small (4) so that the budget
            // holds many steps: learning to look needs steps more than width or batch (README, "Scale presets").
            c = MultimodalRunConfig(preset: "small", variant: variant, stage1Steps: 30, stage2Steps: 2300, batchSize: 4, checkpointEvery: 100, seed: seed)
            (c.grid, c.patch, c.stage2LearningRate) = (8, 6, 1e-3)
            // A box answer (about 16 tokens) carries its information in a few digits: weighed as
            // much as a one-word answer per informative token, grounding rises above blind (README).
            c.lossWeights = ["grounding": 4]
        case "medium":
            c = MultimodalRunConfig(preset: "medium", variant: variant, stage1Steps: 300, stage2Steps: 3000, batchSize: 16, checkpointEvery: 100, seed: seed)
        default:
            return nil
        }
        c.turns = 6   // questions asked about each training image
        return c
    }
}
