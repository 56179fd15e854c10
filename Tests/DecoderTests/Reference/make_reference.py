"""Independent reference for Squeeze's decoder, in the manner of llm.c's test_gpt2.

A Llama-style decoder written from scratch in numpy (float64), with a hand-written backward that
is itself checked against finite differences before anything is written. It

  1. draws a tiny model (GQA, untied head) and writes it with the `safetensors` package to
     tiny_model.safetensors (Hugging Face names; the Squeeze config in the metadata);
  2. reads the weights back from that file;
  3. runs a batch of three sequences of different lengths (some targets ignored) and writes the
     logits, the loss, every parameter's gradient and the losses of 5 AdamW steps to
     reference_outputs.safetensors;
  4. for a multimodal token layout (system text, two crops of 4×4 vision tokens each followed by a
     newline, question text), draws a 3-layer model with the modules of skip-vattn-ffn and spatial
     ProxyV (variant_model.safetensors) and writes the logits of the forward under `baseline`,
     `mask-vv@from:1`, `skip-vattn-ffn@from:1` and `proxyv(r=2)@from:1`, written from the paper's
     semantics (../../../docs/variants.md), and of two deliberately wrong variants — mask-vv
     without the diagonal, ProxyV with its proxies' position ids one later — so that the Swift test
     can show it tells them apart (variant_outputs.safetensors).

Usage (from this folder): python3 make_reference.py      needs numpy and safetensors
"""
import json
import numpy as np
from safetensors.numpy import save_file, load_file

CFG = dict(hidden=32, layers=2, heads=4, kvHeads=2, ffn=48, vocab=37, ropeTheta=10000.0, normEps=1e-5, tiedEmbeddings=False)
D, L, H, HKV, F, V = (CFG[k] for k in ("hidden", "layers", "heads", "kvHeads", "ffn", "vocab"))
HD, EPS, THETA = D // H, CFG["normEps"], CFG["ropeTheta"]
RECIPE = dict(steps=5, lr=1e-2, embedding_lr=3e-3, warmup=2, min_factor=0.1, clip=1.0, b1=0.9, b2=0.95, eps=1e-8, wd=0.1)


def names():
    out = ["model.embed_tokens.weight"]
    for i in range(L):
        p = f"model.layers.{i}."
        out += [p + n for n in ("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                                "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")]
    return out + ["model.norm.weight", "lm_head.weight"]


def shape_of(name):
    kv = HKV * HD
    table = {"embed_tokens": (V, D), "input_layernorm": (D,), "post_attention_layernorm": (D,), "model.norm": (D,),
             "q_proj": (D, D), "k_proj": (kv, D), "v_proj": (kv, D), "o_proj": (D, D),
             "gate_proj": (F, D), "up_proj": (F, D), "down_proj": (D, F), "lm_head": (V, D)}
    return next(s for k, s in table.items() if k in name)


# ---- forward and backward, one function pair per piece ------------------------------------------

def rmsnorm(x, w):
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS)
    return x * r * w, r

def rmsnorm_back(dy, x, w, r):
    dx = dy * w * r - x * r ** 3 * np.sum(dy * w * x, axis=-1, keepdims=True) / x.shape[-1]
    return dx, np.sum(dy * x * r, axis=0)

def rope_tables(n):
    inv = THETA ** (-np.arange(0, HD, 2) / HD)
    ang = np.outer(np.arange(n), inv)
    ang = np.concatenate([ang, ang], axis=-1)           # [n, HD]
    return np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

def rot(x):       # rotate_half
    return np.concatenate([-x[..., HD // 2:], x[..., :HD // 2]], axis=-1)

def rot_t(x):     # its transpose
    return np.concatenate([x[..., HD // 2:], -x[..., :HD // 2]], axis=-1)

def silu(x):
    return x / (1 + np.exp(-x))

def silu_grad(x):
    s = 1 / (1 + np.exp(-x))
    return s * (1 + x * (1 - s))

def attention(q, k, v):
    """q [n,H,HD], k/v [n,HKV,HD], causal. Returns out [n,H,HD] and probabilities [H,n,n]."""
    n, g = q.shape[0], H // HKV
    kk, vv = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = np.einsum("qhd,khd->hqk", q, kk) / np.sqrt(HD)
    s = np.where(np.tril(np.ones((n, n), bool))[None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", p, vv), p

def attention_back(do, q, k, v, p):
    g = H // HKV
    kk, vv = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    dp = np.einsum("qhd,khd->hqk", do, vv)
    ds = p * (dp - np.sum(dp * p, -1, keepdims=True))
    dq = np.einsum("hqk,khd->qhd", ds, kk) / np.sqrt(HD)
    dkk = np.einsum("hqk,qhd->khd", ds, q) / np.sqrt(HD)
    dvv = np.einsum("hqk,qhd->khd", p, do)
    n = q.shape[0]
    return dq, dkk.reshape(n, HKV, g, HD).sum(2), dvv.reshape(n, HKV, g, HD).sum(2)


def forward_backward(W, seqs, tgts, want_grads=True):
    grads = {k: np.zeros_like(v) for k, v in W.items()}
    total, count, all_logits, tapes = 0.0, sum(int((t >= 0).sum()) for t in tgts), [], []
    for toks, tgt in zip(seqs, tgts):
        n = len(toks)
        cos, sin = rope_tables(n)
        x = W["model.embed_tokens.weight"][toks]
        tape = []
        for i in range(L):
            P = lambda s: W[f"model.layers.{i}.{s}"]
            h, r1 = rmsnorm(x, P("input_layernorm.weight"))
            q0, k0, v = (h @ P("self_attn.q_proj.weight").T).reshape(n, H, HD), (h @ P("self_attn.k_proj.weight").T).reshape(n, HKV, HD), (h @ P("self_attn.v_proj.weight").T).reshape(n, HKV, HD)
            q, k = q0 * cos + rot(q0) * sin, k0 * cos + rot(k0) * sin
            a, p = attention(q, k, v)
            a = a.reshape(n, D)
            mid = x + a @ P("self_attn.o_proj.weight").T
            h2, r2 = rmsnorm(mid, P("post_attention_layernorm.weight"))
            g, u = h2 @ P("mlp.gate_proj.weight").T, h2 @ P("mlp.up_proj.weight").T
            hid = silu(g) * u
            out = mid + hid @ P("mlp.down_proj.weight").T
            tape.append((x, h, r1, q, k, v, p, a, mid, h2, r2, g, u, hid))
            x = out
        hf, rf = rmsnorm(x, W["model.norm.weight"])
        logits = hf @ W["lm_head.weight"].T
        lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        m = tgt >= 0
        total += float(np.sum(lse[m] - logits[np.arange(n)[m], tgt[m]]))
        all_logits.append(logits)
        tapes.append((toks, tgt, tape, x, hf, rf, logits, lse, cos, sin))
    loss = total / count
    if not want_grads:
        return loss, np.concatenate(all_logits), None

    for toks, tgt, tape, xL, hf, rf, logits, lse, cos, sin in tapes:
        n = len(toks)
        m = tgt >= 0
        dlogits = np.exp(logits - lse[:, None])
        dlogits[np.arange(n)[m], tgt[m]] -= 1
        dlogits[~m] = 0
        dlogits /= count
        grads["lm_head.weight"] += dlogits.T @ hf
        dx, dw = rmsnorm_back(dlogits @ W["lm_head.weight"], xL, W["model.norm.weight"], rf)
        grads["model.norm.weight"] += dw
        for i in reversed(range(L)):
            P = lambda s: W[f"model.layers.{i}.{s}"]
            G = lambda s: f"model.layers.{i}.{s}"
            x, h, r1, q, k, v, p, a, mid, h2, r2, g, u, hid = tape[i]
            # FFN block
            grads[G("mlp.down_proj.weight")] += dx.T @ hid
            dhid = dx @ P("mlp.down_proj.weight")
            dg, du = dhid * u * silu_grad(g), dhid * silu(g)
            grads[G("mlp.gate_proj.weight")] += dg.T @ h2
            grads[G("mlp.up_proj.weight")] += du.T @ h2
            dh2 = dg @ P("mlp.gate_proj.weight") + du @ P("mlp.up_proj.weight")
            dmid, dw = rmsnorm_back(dh2, mid, P("post_attention_layernorm.weight"), r2)
            grads[G("post_attention_layernorm.weight")] += dw
            dmid += dx
            # attention block
            grads[G("self_attn.o_proj.weight")] += dmid.T @ a
            da = (dmid @ P("self_attn.o_proj.weight")).reshape(n, H, HD)
            dq, dk, dv = attention_back(da, q, k, v, p)
            dq0, dk0 = dq * cos + rot_t(dq * sin), dk * cos + rot_t(dk * sin)
            dq0, dk0, dv = dq0.reshape(n, -1), dk0.reshape(n, -1), dv.reshape(n, -1)
            grads[G("self_attn.q_proj.weight")] += dq0.T @ h
            grads[G("self_attn.k_proj.weight")] += dk0.T @ h
            grads[G("self_attn.v_proj.weight")] += dv.T @ h
            dh = dq0 @ P("self_attn.q_proj.weight") + dk0 @ P("self_attn.k_proj.weight") + dv @ P("self_attn.v_proj.weight")
            dx, dw = rmsnorm_back(dh, x, P("input_layernorm.weight"), r1)
            grads[G("input_layernorm.weight")] += dw
            dx += dmid
        np.add.at(grads["model.embed_tokens.weight"], toks, dx)
    return loss, np.concatenate(all_logits), grads


def check_backward(W, seqs, tgts, grads, rng):
    """The hand-written backward against central differences, in float64."""
    h = 1e-6
    for name in W:
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in W[name].shape)
            old = W[name][idx]
            W[name][idx] = old + h; lp = forward_backward(W, seqs, tgts, False)[0]
            W[name][idx] = old - h; lm = forward_backward(W, seqs, tgts, False)[0]
            W[name][idx] = old
            num = (lp - lm) / (2 * h)
            assert abs(num - grads[name][idx]) <= 1e-7 + 1e-5 * abs(num), (name, idx, num, grads[name][idx])


def adamw_losses(W, seqs, tgts):
    R = RECIPE
    W = {k: v.copy() for k, v in W.items()}
    m = {k: np.zeros_like(v) for k, v in W.items()}
    s = {k: np.zeros_like(v) for k, v in W.items()}
    losses = []
    for step in range(R["steps"]):
        loss, _, g = forward_backward(W, seqs, tgts)
        losses.append(loss)
        norm = np.sqrt(sum(float(np.sum(v * v)) for v in g.values()))
        if norm > R["clip"]:
            g = {k: v * (R["clip"] / (norm + 1e-6)) for k, v in g.items()}
        if step < R["warmup"]:
            factor = (step + 1) / R["warmup"]
        else:
            progress = min(1.0, (step - R["warmup"]) / max(1, R["steps"] - R["warmup"]))
            factor = R["min_factor"] + (1 - R["min_factor"]) * 0.5 * (1 + np.cos(np.pi * progress))
        t = step + 1
        for k in W:
            lr = factor * (R["embedding_lr"] if k == "model.embed_tokens.weight" else R["lr"])
            m[k] = R["b1"] * m[k] + (1 - R["b1"]) * g[k]
            s[k] = R["b2"] * s[k] + (1 - R["b2"]) * g[k] ** 2
            mhat, shat = m[k] / (1 - R["b1"] ** t), s[k] / (1 - R["b2"] ** t)
            decay = 1 - lr * R["wd"] if W[k].ndim >= 2 else 1.0
            W[k] = W[k] * decay - lr * mhat / (np.sqrt(shat) + R["eps"])
    return losses


def main():
    rng = np.random.default_rng(2025)
    weights = {}
    for n in names():
        shp = shape_of(n)
        weights[n] = (1 + 0.1 * rng.standard_normal(shp) if len(shp) == 1 else 0.15 * rng.standard_normal(shp)).astype(np.float32)
    save_file(weights, "tiny_model.safetensors", metadata={"format": "pt", "squeeze.config": json.dumps(CFG)})

    W = {k: v.astype(np.float64) for k, v in load_file("tiny_model.safetensors").items()}
    lengths = [7, 4, 9]
    seqs = [rng.integers(0, V, n) for n in lengths]
    tgts = [rng.integers(0, V, n) for n in lengths]
    tgts[0][:3] = -1          # prompt positions carry no loss
    tgts[2][[1, 4]] = -1
    loss, logits, grads = forward_backward(W, seqs, tgts)
    check_backward(W, seqs, tgts, grads, rng)
    losses = adamw_losses(W, seqs, tgts)

    out = {"inputs": np.concatenate(seqs).astype(np.int32), "lengths": np.array(lengths, np.int32),
           "targets": np.concatenate(tgts).astype(np.int32), "logits": logits.astype(np.float32),
           "loss": np.array([loss], np.float32), "adamw_losses": np.array(losses, np.float32)}
    out.update({"grad." + k: v.astype(np.float32) for k, v in grads.items()})
    save_file(out, "reference_outputs.safetensors", metadata={"recipe": json.dumps(RECIPE)})
    print(f"loss {loss:.6f}; AdamW losses {' '.join(f'{x:.6f}' for x in losses)}")


# ---- the variants' forward over a multimodal token layout -----------------------------------------
# Tokens: (kind, crop, index, position). Every token keeps its position id; attention is causal by
# position id plus the variant's masks.

MM = dict(hidden=32, layers=3, heads=4, kvHeads=2, ffn=48, vocab=37, ropeTheta=10000.0, normEps=1e-5, tiedEmbeddings=False)
GRID, CROPS, SYSTEM, QUESTION, REDUCE, LIGHT = 4, 2, 2, 3, 2, 8


def mm_layout():
    tokens, pos = [], 0
    for i in range(SYSTEM):
        tokens.append(("system", -1, i, pos)); pos += 1
    for c in range(CROPS):
        for i in range(GRID * GRID):
            tokens.append(("vision", c, i, pos)); pos += 1
        tokens.append(("newline", c, 0, pos)); pos += 1
    for i in range(QUESTION):
        tokens.append(("question", -1, i, pos)); pos += 1
    return tokens


def rope(x, positions, heads):
    """x [n, heads·HD] rotated by each row's own position id (rotate_half)."""
    inv = THETA ** (-np.arange(0, HD, 2) / HD)
    ang = np.outer(positions, inv)
    ang = np.concatenate([ang, ang], axis=-1)[:, None, :]
    y = x.reshape(len(positions), heads, HD)
    return (y * np.cos(ang) + rot(y) * np.sin(ang)).reshape(len(positions), -1)


def masked_attention(q, k, v, allowed):
    """q [nq, H·HD], k/v [nk, HKV·HD], allowed [nq, nk] (a row with no key gives 0)."""
    g = H // HKV
    qh = q.reshape(len(q), H, HD)
    kh, vh = np.repeat(k.reshape(len(k), HKV, HD), g, axis=1), np.repeat(v.reshape(len(v), HKV, HD), g, axis=1)
    s = np.einsum("qhd,khd->hqk", qh, kh) / np.sqrt(HD)
    s = np.where(allowed[None], s, -np.inf)
    m = np.max(s, -1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.where(allowed[None], np.exp(s - m), 0)
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-300)
    return np.einsum("hqk,khd->qhd", p, vh).reshape(len(q), D)


def bilinear_down(grid_tokens, g, r):
    """PyTorch's bilinear interpolation (align_corners=False, no antialias) of a [g·g, d] raster
    grid to (g/r)×(g/r)."""
    n = g // r
    def taps(o):
        src = max((o + 0.5) * r - 0.5, 0.0)
        i0 = min(int(np.floor(src)), g - 1); i1 = min(i0 + 1, g - 1); w = src - i0
        return [(i0, 1 - w), (i1, w)]
    out = np.zeros((n * n, grid_tokens.shape[1]))
    for oy in range(n):
        for ox in range(n):
            for y, wy in taps(oy):
                for x, wx in taps(ox):
                    out[oy * n + ox] += wy * wx * grid_tokens[y * g + x]
    return out


def layer_forward(W, l, x, tokens, variant, wrong=None):
    """One decoder layer under `variant` (applied from layer 1 on); returns its output rows."""
    P = lambda s: W[f"model.layers.{l}.{s}"]
    kinds = [t[0] for t in tokens]
    pos = np.array([t[3] for t in tokens])
    on = variant != "baseline" and l >= 1
    queries = [i for i, k in enumerate(kinds) if not (on and variant in ("skip-vattn-ffn", "proxyv") and k == "vision")]
    keys = list(range(len(tokens)))
    h, _ = rmsnorm(x, P("input_layernorm.weight"))
    q = rope(h[queries] @ P("self_attn.q_proj.weight").T, pos[queries], H)
    k = rope(h @ P("self_attn.k_proj.weight").T, pos, HKV)
    v = h @ P("self_attn.v_proj.weight").T
    allowed = np.zeros((len(queries), len(keys)), bool)
    for a, i in enumerate(queries):
        for j in keys:
            ok = pos[j] <= pos[i]
            if on and variant == "mask-vv" and kinds[i] == "vision" and kinds[j] == "vision":
                ok = ok and (i == j and wrong != "no-diagonal")
            if on and variant == "proxyv":
                if kinds[i] == "proxy" and kinds[j] == "vision": ok = False
                if kinds[i] != "proxy" and kinds[j] == "proxy": ok = False
            allowed[a, j] = ok
    out = x.copy()
    out[queries] += masked_attention(q, k, v, allowed) @ P("self_attn.o_proj.weight").T
    ffn = queries
    h2, _ = rmsnorm(out[ffn], P("post_attention_layernorm.weight"))
    out[ffn] += (silu(h2 @ P("mlp.gate_proj.weight").T) * (h2 @ P("mlp.up_proj.weight").T)) @ P("mlp.down_proj.weight").T
    vision = [i for i, k in enumerate(kinds) if k == "vision"]
    if on and variant == "skip-vattn-ffn":
        M = lambda s: W[f"model.light_mlp_layers.{l}.{s}"]
        n, _ = rmsnorm(out[vision], M("norm.weight"))
        out[vision] += silu(silu(n @ M("fc1.weight").T) @ M("fc2.weight").T) @ M("fc3.weight").T
    if on and variant == "proxyv":
        G = lambda s: W[f"model.vision_mlp_layers.{l - 1}.{s}"]   # the official code counts them from the start layer
        for c in range(CROPS):
            rows = sorted((i for i in vision if tokens[i][1] == c), key=lambda i: tokens[i][2])
            proxies = sorted((i for i, t in enumerate(tokens) if t[0] == "proxy" and t[1] == c), key=lambda i: tokens[i][2])
            context = out[proxies] @ G("context_proj.weight").T
            n = GRID // REDUCE
            up = np.array([context[(t // GRID // REDUCE) * n + (t % GRID) // REDUCE] for t in range(GRID * GRID)])   # nearest ×r
            joined = np.concatenate([out[rows] @ G("input_proj.weight").T, up], axis=1)
            s = silu(joined @ G("proj.0.weight").T) @ G("proj.2.weight").T + out[rows]
            out[rows], _ = rmsnorm(s, G("layernorm_post.weight"))
    return out


def variant_logits(W, x, variant, wrong=None):
    tokens = mm_layout()
    for l in range(MM["layers"]):
        if variant == "proxyv" and l == 1:
            # Proxies: each crop's grid resized by 1/r, position ids the first of the image span.
            start = SYSTEM + (1 if wrong == "proxy-positions" else 0)
            made = []
            for c in range(CROPS):
                rows = sorted((i for i, t in enumerate(tokens) if t[0] == "vision" and t[1] == c), key=lambda i: tokens[i][2])
                made.append(bilinear_down(x[rows], GRID, REDUCE))
            per = (GRID // REDUCE) ** 2
            tokens = tokens + [("proxy", c, i, start + c * per + i) for c in range(CROPS) for i in range(per)]
            x = np.concatenate([x] + made)
        x = layer_forward(W, l, x, tokens, variant, wrong)
    keep = [i for i, t in enumerate(tokens) if t[0] != "proxy"]    # proxies leave after the last layer
    hf, _ = rmsnorm(x[keep], W["model.norm.weight"])
    return hf @ W["lm_head.weight"].T


def variants_main():
    global D, L, H, HKV, F, V, HD
    D, L, H, HKV, F, V = (MM[k] for k in ("hidden", "layers", "heads", "kvHeads", "ffn", "vocab"))
    HD = D // H
    rng = np.random.default_rng(2026)
    weights = {}
    for n in names():
        shp = shape_of(n)
        weights[n] = (1 + 0.1 * rng.standard_normal(shp) if len(shp) == 1 else 0.3 * rng.standard_normal(shp)).astype(np.float32)
    w = D // 4
    for l in (1, 2):
        for name, shp in ((f"model.light_mlp_layers.{l}.norm.weight", (D,)), (f"model.light_mlp_layers.{l}.fc1.weight", (LIGHT, D)),
                          (f"model.light_mlp_layers.{l}.fc2.weight", (LIGHT, LIGHT)), (f"model.light_mlp_layers.{l}.fc3.weight", (D, LIGHT)),
                          (f"model.vision_mlp_layers.{l - 1}.input_proj.weight", (w, D)), (f"model.vision_mlp_layers.{l - 1}.context_proj.weight", (w, D)),
                          (f"model.vision_mlp_layers.{l - 1}.proj.0.weight", (w, 2 * w)), (f"model.vision_mlp_layers.{l - 1}.proj.2.weight", (D, w)),
                          (f"model.vision_mlp_layers.{l - 1}.layernorm_post.weight", (D,))):
            weights[name] = (1 + 0.1 * rng.standard_normal(shp) if len(shp) == 1 else 0.3 * rng.standard_normal(shp)).astype(np.float32)
    n_tokens = len(mm_layout())
    weights["inputs"] = rng.standard_normal((n_tokens, D)).astype(np.float32)
    save_file(weights, "variant_model.safetensors", metadata={"format": "pt", "squeeze.config": json.dumps(MM), "light_width": str(LIGHT)})
    W = {k: v.astype(np.float64) for k, v in load_file("variant_model.safetensors").items()}
    out = {}
    for name, variant, wrong in (("baseline", "baseline", None), ("mask-vv", "mask-vv", None), ("skip-vattn-ffn", "skip-vattn-ffn", None),
                                 ("proxyv", "proxyv", None), ("wrong.mask-vv-without-diagonal", "mask-vv", "no-diagonal"),
                                 ("wrong.proxyv-positions-shifted", "proxyv", "proxy-positions")):
        out["logits." + name] = variant_logits(W, W["inputs"], variant, wrong).astype(np.float32)
    save_file(out, "variant_outputs.safetensors")
    print("variants: " + ", ".join(f"{k} {float(np.abs(v).mean()):.4f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
    variants_main()
