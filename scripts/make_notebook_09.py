"""Generate notebooks/09_outlook.ipynb (chapter 9: explanations, compression, privacy, pointers)."""

from make_notebook_common import Book

b = Book("09_outlook", "9. Outlook: explanations, compression, privacy", [
    "explain a recommendation by leave-one-out: which history items and which title words drive it",
    "compress the text side (fp16 embedding table, int8 dynamically quantised language model) and measure speed against NDCG",
    "list exactly what is shared when parameters are transferred instead of user data, and what is personal in it",
    "find the entry points to multi-modal and reinforcement-learning recommenders in the literature",
])

b.md(r"""
The original material ended with trends: explainability, lighter models, privacy, multiple modalities,
reinforcement learning. Each of the first three is made concrete here with a small experiment on the
model of this book; the last two are reading pointers. Everything runs on the Kitchen → Food setup of
chapter 5 at this build's scale (CI: small sample, two epochs), so the demonstrations are about *how*
to ask the question, not final answers.
""")
b.code(r'''
import dataclasses
import tempfile

import numpy as np
import pandas as pd

from xdtutor.evaluate import evaluate
from xdtutor.pipeline import collect, extract, load_config, pretrain
from xdtutor.transfer import get_strategy
from xdtutor.utils import pad_left

ROOT = pathlib.Path.cwd().resolve()
while not (ROOT / "pyproject.toml").exists() and ROOT != ROOT.parent:
    ROOT = ROOT.parent
config = load_config(ROOT / "configs" / "kitchen_to_food.yaml",
                     [("scale", SCALE), ("data.data_dir", DATA_DIR), ("device", DEVICE), ("seeds", [SEED])])
prepared = collect(config)          # data + cached item-text embeddings
''', tags=["nbval-ignore-output"])
b.code(r'''
knowledge = extract(config, prepared, pretrain(config, prepared, SEED))      # Kitchen -> θ_s
target = prepared.dataset.target
tconf = dataclasses.replace(config.transfer, train=dataclasses.replace(config.train, seed=SEED))
tuned = get_strategy("full_finetune").apply(knowledge, target, tconf, device=DEVICE, text_emb=prepared.target_emb)
model = tuned.model.eval()
base_eval = evaluate(model, target.test, target.protocol, device=DEVICE)
print(f"fine-tuned Kitchen -> Food model: test NDCG@10 {base_eval.metrics['ndcg@10']:.4f} "
      f"on {base_eval.n_users} users ({target.protocol.describe()})")
''', tags=["nbval-ignore-output"])

# ---- 9.1 explanations
b.md(r"""
## 9.1 Explanations: what drives a recommendation?

A recommendation is a score $s_{u,j}$; an explanation says which inputs it depends on. The simplest
faithful method needs no access to the model's internals: **leave one out**. Remove one history item,
re-score, and see how much the recommended item's score drops. Unlike attention weights, which show
where the transformer *looked*, the drop measures what the score *depends on*.

We take a test user for whom the model ranks the true next item among its top three, choosing the
one with the longest history so that there is something to explain, and explain the model's *top*
recommendation for them.
""")
b.code(r'''
L = config.model.max_len
texts = target.domain.texts
dev = model.text_emb.device


def scores_for(histories):
    with torch.no_grad():
        return model.score(pad_left(histories, L).to(dev)).cpu()                  # (B, N)


hits = base_eval.per_user.index[base_eval.per_user["rank"] <= 3].tolist()
u = max(hits, key=lambda i: (len(target.test.histories[i]), -i)) if hits else 0
history = list(target.test.histories[u][-10:])
full = scores_for([history])[0]
rec = int(full.argmax())
variants = [history[:k] + history[k + 1:] for k in range(len(history))]
drops = (full[rec] - scores_for(variants)[:, rec]).numpy()
expl = pd.DataFrame({"history item (oldest first)": [texts[i][:70] for i in history],
                     "score drop without it": drops})
top_k = int(np.argmax(drops))
glue("expl_driver", Markdown(
    f"the history item whose removal lowers the score most is “{texts[history[top_k]][:60]}” "
    f"({drops[top_k]:+.2f})" + (" — the recommended item itself: the model recommends a **repeat purchase**, "
                                 "which the protocol allows because history items are not masked"
                                 if history[top_k] == rec else "")), display=False)
print(f"recommended: {texts[rec][:90]!r}  (score {float(full[rec]):.2f}; the user's real next item: "
      f"{'this one' if rec == int(target.test.targets[u]) else repr(texts[int(target.test.targets[u])][:60])})")
expl.style.format({"score drop without it": "{:+.3f}"}).bar(subset=["score drop without it"], align="zero",
                                                             color=["#d65f5f", "#5fba7d"])
''', tags=["nbval-ignore-output"])
b.md(r"""
In this run {glue:md}`expl_driver`.

The same question can be asked about the **title words** of the recommended item: its vector comes
from its text, so remove one word at a time, re-encode the title with the language model, add the
variants to the catalogue as extra items (`TextSeqRec.set_catalogue`) and score them for the same user. Words whose
removal lowers the score most are what the model "read" in this item.
""")
b.code(r'''
import copy

from xdtutor.encoders import encode_texts

words = texts[rec].split()[:20]
variants = [" ".join(words[:k] + words[k + 1:]) for k in range(len(words))]
emb = encode_texts([" ".join(words)] + variants, config.encoder, cache=False, progress=False)   # (1 + W, D)
N = target.n_items
# the catalogue plus the title variants as extra items (the history still refers to items 0 … N-1)
probe = copy.deepcopy(model).set_catalogue(torch.cat([torch.as_tensor(prepared.target_emb), torch.as_tensor(emb)]))
with torch.no_grad():
    s = probe.score(pad_left([history], L).to(dev))[0, N:].cpu().numpy()    # (1 + W,) scores of the variants
word_drop = pd.Series(s[0] - s[1:], index=[f"{k}:{w[:20]}" for k, w in enumerate(words)], name="score drop")
fig, ax = plt.subplots(figsize=(7, 3))
word_drop.plot.bar(ax=ax, color=np.where(word_drop > 0, "tab:green", "tab:red"))
ax.set(ylabel="score drop without the word", title="which title words drive the recommendation")
fig.tight_layout()
''', tags=["nbval-ignore-output"])
b.md(r"""
Two caveats belong to every explanation. Leave-one-out explains *this* model's score, not the user's
reasons; and removing an item changes the positions of the others, so a drop mixes "what" and "when".
In a cross-domain model one may also ask which *source* knowledge matters: comparing the zero-shot and
fine-tuned models on the same user (exercise 1) shows how much of a recommendation was already there
before any Food training.
""")

# ---- 9.2 compression
b.md(r"""
## 9.2 Compression: a lighter text side

The recommender itself is small; the expensive parts are the language model that embeds item text
and the $(N \times D)$ embedding table. Two standard reductions:

* **fp16 storage** of the embedding table: half the memory, and the rounding error is tiny compared
  with the differences between items;
* **int8 dynamic quantisation** of the language model's linear layers
  (`torch.ao.quantization.quantize_dynamic`; see {cite}`dettmers2022int8` for int8 in large
  transformers): weights stored as 8-bit integers, activations quantised on the fly; CPU only.

We measure encoding speed on 200 titles and the fine-tuned recommender's test NDCG@10 when its
catalogue embeddings come from each variant (the recommender is *not* retrained).
""")
b.code(r'''
from torch import nn

from xdtutor.encoders import EncoderConfig, TextEncoder

enc_cfg = EncoderConfig(**{k: getattr(config.encoder, k) for k in ("model", "pooling", "max_tokens", "batch_size")})
fp32 = TextEncoder(enc_cfg, device="cpu")
int8 = TextEncoder(enc_cfg, device="cpu")
with warnings.catch_warnings():                   # torch.ao.quantization announces its move to torchao
    warnings.simplefilter("ignore")
    int8.model = torch.ao.quantization.quantize_dynamic(int8.model, {nn.Linear}, dtype=torch.qint8)
sample = texts[:200]


def timed(encoder):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = encoder.encode(sample, progress=False)
    return out, len(sample) / (time.perf_counter() - t0)


e32, speed32 = timed(fp32)
e8, speed8 = timed(int8)
assert np.allclose(e32, prepared.target_emb[:200], atol=1e-4)        # the cached table is the fp32 encoder's

with tempfile.TemporaryDirectory() as tmp:
    sizes = {}
    for name, enc in (("fp32", fp32), ("int8", int8)):
        torch.save(enc.model.state_dict(), f"{tmp}/{name}.pt")
        sizes[name] = pathlib.Path(f"{tmp}/{name}.pt").stat().st_size / 2**20

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    full_int8 = int8.encode(texts, progress=False)                    # the whole catalogue, int8 encoder
tables = {"fp32 (reference)": prepared.target_emb,
          "fp16 table": prepared.target_emb.astype(np.float16).astype(np.float32),
          "int8 encoder": full_int8}
rows = {}
for name, table in tables.items():
    m = copy.deepcopy(model).set_catalogue(torch.as_tensor(table))
    ev = evaluate(m, target.test, target.protocol, device=DEVICE)
    cos = float(np.mean(np.sum(table * prepared.target_emb, 1) /
                        (np.linalg.norm(table, axis=1) * np.linalg.norm(prepared.target_emb, axis=1))))
    rows[name] = {"test NDCG@10": ev.metrics["ndcg@10"], "test Recall@10": ev.metrics["recall@10"],
                  "cosine to fp32 embedding": cos,
                  "table MB": table.shape[0] * table.shape[1] * (2 if "fp16" in name else 4) / 2**20}
rows["fp32 (reference)"].update({"encoder MB": sizes["fp32"], "titles/s": speed32})
rows["int8 encoder"].update({"encoder MB": sizes["int8"], "titles/s": speed8})
comp = pd.DataFrame(rows).T
glue("int8_speedup", float(speed8 / speed32), display=False)
glue("int8_size_ratio", float(sizes["int8"] / sizes["fp32"]), display=False)
glue("int8_ndcg_change", float(comp.loc["int8 encoder", "test NDCG@10"] - comp.loc["fp32 (reference)", "test NDCG@10"]),
     display=False)
glue("int8_cos", float(comp.loc["int8 encoder", "cosine to fp32 embedding"]), display=False)
glue("fp16_ndcg_change", float(comp.loc["fp16 table", "test NDCG@10"] - comp.loc["fp32 (reference)", "test NDCG@10"]),
     display=False)
comp.style.format("{:.4f}", subset=["test NDCG@10", "test Recall@10", "cosine to fp32 embedding"]).format(
    "{:.1f}", subset=["table MB", "encoder MB", "titles/s"], na_rep="")
''', tags=["nbval-ignore-output"])
b.md(r"""
In this run the int8 encoder was {glue:text}`int8_speedup:.2f`× as fast as fp32 on this CPU, its saved
weights {glue:text}`int8_size_ratio:.0%` of the fp32 size, and the recommender's test NDCG@10 changed
by {glue:text}`int8_ndcg_change:+.4f` (fp16 table: {glue:text}`fp16_ndcg_change:+.4f`). The int8 title
vectors have an average cosine of {glue:text}`int8_cos:.3f` to the fp32 ones: the recommender was
trained on the fp32 vectors, so a quantised encoder shifts its input space, and the honest comparison
would re-embed the catalogue *and* re-fine-tune on the quantised vectors. fp16 storage of the table, in
contrast, is essentially free. On a GPU the
package already encodes under bf16/fp16 autocast (`EncoderConfig.autocast`); int8 dynamic
quantisation is a CPU technique. Since item embeddings are computed once and cached, encoder speed
matters for large or fast-changing catalogues, and table size for serving.
""")

# ---- 9.3 privacy
b.md(r"""
## 9.3 Privacy: sharing parameters, not user data

Cross-domain recommendation often crosses organisational borders: the Kitchen shop and the Food shop
may not be allowed to exchange customer histories. Parameter transfer changes *what* crosses the
border. Here is everything in the `Knowledge` object, and what each part is indexed by.
""")
b.code(r'''
with tempfile.TemporaryDirectory() as tmp:
    knowledge.save(tmp)
    files = {p.name: p.stat().st_size for p in sorted(pathlib.Path(tmp).iterdir())}
    theta_bytes = (pathlib.Path(tmp) / "theta.safetensors").read_bytes()
    json_text = (pathlib.Path(tmp) / "knowledge.json").read_text()

parts = [{"part": f"θ_s: {k}", "shape": tuple(v.shape), "indexed by": "architecture"} for k, v in knowledge.theta.items()]
parts += [{"part": f"item reps: {k}", "shape": tuple(v.shape), "indexed by": "source items"} for k, v in knowledge.item_reps.items()]
parts += [{"part": f"user reps: {k}", "shape": tuple(v.shape), "indexed by": "overlapping users"} for k, v in knowledge.user_reps.items()]
inventory = pd.DataFrame(parts)
print({name: f"{size / 1024:.0f} KiB" for name, size in files.items()})
inventory.groupby("indexed by", sort=False).agg(tensors=("part", "count"),
                                                numbers=("shape", lambda s: int(sum(np.prod(x) for x in s))))
''', tags=["nbval-ignore-output"])
b.md(r"""
θ_s's shapes depend only on the architecture. We check that directly — a model built for a
catalogue of 7 items has exactly the same θ_s shapes — and that no user key occurs anywhere in the
saved θ_s file. The user representations and their keys, on the other hand, *are* personal data: one
row per overlapping user, derived from their purchase history.
""")
b.code(r'''
from xdtutor.models import TextSeqRec
from xdtutor.transfer.base import transferable_names

tiny = TextSeqRec(torch.zeros(7, knowledge.text_dim), **{k: v for k, v in knowledge.model_config.items()})
tiny_shapes = {n: tuple(p.shape) for n, p in tiny.named_parameters() if n in set(transferable_names(tiny))}
assert tiny_shapes == {k: tuple(v.shape) for k, v in knowledge.theta.items()}       # independent of items/users
users = list(prepared.dataset.overlap)
assert not any(u.encode() in theta_bytes for u in users)                              # no user key in θ_s
n_in_json = sum(u in json_text for u in knowledge.user_keys)
print(f"θ_s: {len(knowledge.theta)} tensors, {knowledge.n_theta:,} numbers, same shapes for any catalogue, "
      f"no user key inside; knowledge.json names {n_in_json} overlapping users (for the mapping).")
''', tags=["nbval-ignore-output"])
b.md(r"""
What each strategy needs from the source, therefore:

| strategy | needs from the source | personal data crosses? |
|---|---|---|
| zero-shot, full fine-tune, L2-SP, frozen encoder, LoRA, fusion | θ_s (and the text encoder's name) | no user-indexed data |
| EMCDR mapping | θ_s **and** per-user source representations of the overlapping users | **yes** |

"No user-indexed data" is not the same as "private". Model parameters can memorise training data;
membership-inference attacks can sometimes tell whether a person was in the training set. The next
steps are federated training {cite}`mcmahan2017fedavg`, where the source model is trained without
collecting histories centrally, and differentially private training {cite}`abadi2016dpsgd`, which bounds what any one user
can change in θ_s. For the mapping, the two parties must at least agree on a pseudonymous id for
shared users — the hardest organisational part of EMCDR-style transfer.
""")

# ---- 9.4 pointers
b.md(r"""
## 9.4 Multi-modal and reinforcement-learning recommenders: reading pointers

**Multi-modal item representations.** This book represents an item by its title. Product images were
an early signal for recommendation {cite}`mcauley2015image`, and MoRec {cite}`yuan2023morec` shows that
modality encoders (text *and* images) trained end to end can match or beat ID embeddings — with
frozen features, as here, ID-based models often still win. For transfer the attraction is the same as
for text: an image, like a title, exists for items no model has seen. VQ-Rec {cite}`hou2023vqrec`
and Recformer {cite}`li2023recformer` are text-side steps in the same direction (discrete codes of
item text; a language model over item "sentences").

**Reinforcement learning.** Next-item prediction, as trained here, optimises one step ahead; a
recommender's real objective — long-term engagement, diversity over a session — is sequential
decision making. Reinforcement-learning recommenders treat recommendations as actions and learn from
logged feedback with off-policy corrections (for example the top-K off-policy corrected
REINFORCE recommender {cite}`chen2019topk`). Transfer enters through the state representation: the
sequence encoder pretrained on a source domain is a natural initialisation for a policy network.
Neither direction is implemented in `xdtutor`; the surveys of cross-domain recommendation
{cite}`zhu2021cdrsurvey` and of transfer learning {cite}`pan2010transfer` place them in context.
""")

b.md("## Exercises")
b.exercise("ex-09-zero-shot-explain", r"""
Explain the same user's top recommendation with the **zero-shot** model (θ_s, no Food training).
Is the recommended item the same? Which history items matter now?
""", solution_code=r'''
zero = get_strategy("zero_shot").apply(knowledge, target, tconf, device=DEVICE, text_emb=prepared.target_emb).model
with torch.no_grad():
    zs = zero.score(pad_left([history], L).to(zero.text_emb.device)).cpu()[0]
    zrec = int(zs.argmax())
    zv = zero.score(pad_left([history[:k] + history[k + 1:] for k in range(len(history))], L)
                    .to(zero.text_emb.device)).cpu()[:, zrec]
print(f"zero-shot recommends {texts[zrec][:80]!r} ({'same as' if zrec == rec else 'differs from'} the fine-tuned model)")
print(pd.Series((zs[zrec] - zv).numpy(), index=[texts[i][:50] for i in history], name="score drop").round(3))
''', tags=["nbval-ignore-output"])
b.exercise("ex-09-fp16-model", r"""
Store the fine-tuned **recommender** (not the encoder) in fp16: cast a copy with `.half()`, cast it
back with `.float()`, and evaluate. How much smaller is its state dict, and does NDCG@10 change?
""", solution_code=r'''
half = copy.deepcopy(model).half().float()
ev = evaluate(half, target.test, target.protocol, device=DEVICE)
n_bytes = sum(p.numel() for p in model.parameters()) * 4
print(f"state dict {n_bytes / 2**20:.2f} MB in fp32 -> {n_bytes / 2**21:.2f} MB in fp16; "
      f"NDCG@10 {base_eval.metrics['ndcg@10']:.4f} -> {ev.metrics['ndcg@10']:.4f}")
''', tags=["nbval-ignore-output"])
b.exercise("ex-09-privacy", r"""
A partner offers you only the **item representations** of its catalogue (no θ_s, no user data). Which
of this book's strategies could still use them, and how?
""", solution_md=r"""
None of the seven directly: they all start from θ_s. Item representations of a *different* catalogue
help only through items that appear in both catalogues (the same product sold by both partners) or
through text similarity — e.g. initialise a target item's ID embedding from its nearest source items'
representations, or use them as extra features in fusion. That is transfer through items rather than
users or parameters, and it shares no user-indexed data (though popularity can leak through the
representations).
""")

if __name__ == "__main__":
    print(b.write())
