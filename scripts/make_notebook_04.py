"""Generate notebooks/04_mathematics.ipynb (chapter 4: every formula checked against the package)."""

from make_notebook_common import Book

b = Book("04_mathematics", "4. Mathematics: every formula, checked against the package", [
    "write down the next-item objective (softmax cross-entropy over the catalogue or over the batch's items) and the text item representation (pooling + adaptor)",
    "express every transfer strategy as θ_t = θ_s + Δθ with a concrete form of Δθ (full, L2-SP, low-rank BA, fusion)",
    "derive the EMCDR mapping as (ridge) least squares and recognise its closed form",
    "compute Recall@K and NDCG@K for a worked example and say how ties are ranked",
    "verify each formula numerically: every formula below is followed by a cell that recomputes it by hand and `assert`s that `xdtutor` gives the same number",
])

b.md(r"""
Chapter 3 ran the steps; this chapter writes them down. The rule is simple: **no formula without
a check**. After each one, a cell recomputes the quantity by hand (plain PyTorch/NumPy, clearly
labelled *teaching code*) and asserts that the package computes the same thing. If someone changes
the package so that it no longer implements the formula on this page, this chapter fails in CI.

We work on the real data at CI scale: the Kitchen → Food configuration of chapter 5
(`configs/kitchen_to_food.yaml`, its `ci` section), item texts embedded by all-MiniLM-L6-v2
{cite}`wang2020minilm,reimers2019sbert`. The checks are about identities, not about quality, so the
small scale loses nothing; the chapter uses it at every scale.
""")

b.code(r'''
import numpy as np
import torch.nn.functional as F

from xdtutor.pipeline import collect, load_config

ROOT = pathlib.Path.cwd().resolve()
while not (ROOT / "pyproject.toml").exists() and ROOT != ROOT.parent:
    ROOT = ROOT.parent
config = load_config(ROOT / "configs" / "kitchen_to_food.yaml",
                     [("scale", "ci"), ("data.data_dir", DATA_DIR), ("device", "cpu")])
prepared = collect(config)   # steps 1-2: data + item text embeddings (cached on disk)
''', tags=["nbval-ignore-output"])

b.code(r'''
target = prepared.dataset.target
E_t = torch.as_tensor(prepared.target_emb)                      # (N_t, D) Food item embeddings
print(f"target: {target.n_items} Food items, {len(target.train)} training users; text dim D = {E_t.shape[1]}")
print(f"source: {prepared.sources[0].n_items} Kitchen items, {prepared.sources[0].n_users} users")
''')

# ------------------------------------------------------------------ 4.1 objective
b.md(r"""
## 4.1 The sequential recommendation objective

A user's history is a sequence of items $i_1, i_2, \dots, i_n$. A causal transformer
{cite}`vaswani2017attention,kang2018sasrec` reads the prefix $i_1 \dots i_t$ and outputs a state
$\mathbf h_t \in \mathbb R^H$. Every catalogue item $j$ has a representation
$\mathbf v_j \in \mathbb R^H$, and the score of item $j$ as the next item is a similarity — here the
cosine divided by a temperature $\tau$, as in UniSRec {cite}`hou2022unisrec`:

$$
s_{t,j} = \frac{\cos(\mathbf h_t, \mathbf v_j)}{\tau}
        = \frac{\mathbf h_t^\top \mathbf v_j}{\tau\,\lVert\mathbf h_t\rVert\,\lVert\mathbf v_j\rVert}.
$$

Training minimises the **full-softmax cross-entropy** of the true next item over *all* $N$ items
(every target training, here), averaged over the $M$ non-padding positions of a batch:

$$
\mathcal L(\theta) = -\frac{1}{M}\sum_{(u,t)} \log
\frac{\exp(s_{t,\,i_{t+1}})}{\sum_{j=1}^{N} \exp(s_{t,j})}.
$$

The check: build a (randomly initialised) text-based model on the Food catalogue, take real
training windows from `xdtutor.train.training_sequences`, and compute the loss by hand.
""")

b.code(r'''
from xdtutor.models import TextSeqRec
from xdtutor.train import training_sequences

seed_everything(SEED)
model = TextSeqRec(E_t, **config.model.kwargs()).eval()       # eval: dropout off, so both paths agree
inputs, targets = training_sequences(target, config.model.max_len)
inputs, targets = inputs[:64], targets[:64]                    # (B, L): +1-shifted ids, 0 = padding

with torch.no_grad():
    loss_package = model.loss(inputs, targets)
    # --- teaching code: the formula above, by hand --------------------------------------------
    h = model(inputs)                                          # (B, L, H) causal states h_t
    v = model.item_representations()                           # (N, H) item representations v_j
    s = F.normalize(h, dim=-1) @ F.normalize(v, dim=-1).T / model.temperature   # (B, L, N) scores s_tj
    keep = targets > 0                                         # the M positions with a next item
    log_p = s[keep].log_softmax(dim=-1)                        # (M, N)
    loss_by_hand = -log_p.gather(1, (targets[keep] - 1)[:, None]).mean()

print(f"M = {int(keep.sum())} positions, N = {v.shape[0]} items")
assert torch.allclose(loss_package, loss_by_hand, atol=1e-5)
print(f"loss (package) = {loss_package.item():.3f} = loss (by hand) to 1e-5;   log N = {np.log(v.shape[0]):.3f}")
''')

b.md(r"""
The value to compare with is $\log N$, the loss of a uniform guess over the catalogue; an untrained
model is no better than that (with $\tau = 0.07$ its random cosines already spread the scores, so it
starts somewhat above). Full-softmax CE is what every target fine-tuning and baseline uses, and what
evaluation ranks against. It costs an adaptor pass over all $N$ items and one $(M \times N)$ matrix
product per batch.

**In-batch negatives.** On a large source catalogue (Kitchen: 27,637 items) that cost dominates, so
full-scale source pretraining uses UniSRec's pretraining objective {cite}`hou2022unisrec`: the softmax
runs over $\mathcal B$, the *distinct* items of the batch (inputs and targets), instead of all $N$:

$$
\mathcal L_{\text{batch}}(\theta) = -\frac{1}{M}\sum_{(u,t)} \log
\frac{\exp(s_{t,\,i_{t+1}})}{\sum_{j \in \mathcal B} \exp(s_{t,j})}, \qquad |\mathcal B| \ll N .
$$

Each item is a candidate once, so an item that occurs twice in the batch is never its own negative.
Because items enter $\mathcal B$ as often as they are bought, the negatives are popularity-sampled:
the model learns which items follow *beyond* their popularity, and fine-tuning with the full softmax
on the target puts popularity back — except where nothing is fine-tuned: the zero-shot model and the
cold-user mapping score with the pretrained θ_s as it is, so at full scale their popularity signal is
weaker than that of a source model pretrained with the full softmax. `TrainConfig(negatives="in_batch")` selects it; the check below
recomputes it by hand on the same batch.
""")

b.code(r'''
with torch.no_grad():
    loss_batch_package = model.loss(inputs, targets, negatives="in_batch")
    # --- teaching code: the same scores, restricted to the distinct items of the batch ----------
    batch_items = torch.unique(torch.cat([inputs[inputs > 0], targets[targets > 0]])) - 1   # (|B|,) ids
    s_b = s[keep][:, batch_items]                              # (M, |B|) scores of the batch items only
    label = torch.searchsorted(batch_items, targets[keep] - 1) # where each target sits in B
    loss_batch_by_hand = F.cross_entropy(s_b, label)

assert torch.allclose(loss_batch_package, loss_batch_by_hand, atol=1e-5)
print(f"|B| = {batch_items.numel()} distinct items in this batch of {inputs.shape[0]} windows (N = {v.shape[0]}); "
      f"in-batch loss {loss_batch_package.item():.3f} (package = by hand);   log |B| = {np.log(batch_items.numel()):.3f}")
''')

# ------------------------------------------------------------------ 4.2 text representation
b.md(r"""
## 4.2 The text item representation: pooling + adaptor

An item has no learned ID vector; it has a **title**. A pretrained language model
{cite}`devlin2019bert` maps the title's $T$ tokens to states $\mathbf z_1 \dots \mathbf z_T \in
\mathbb R^D$, and **mean pooling** with the attention mask $m_k \in \{0, 1\}$ (padding excluded) gives
one frozen vector per item:

$$
\mathbf e_j = \frac{\sum_{k=1}^{T} m_k\,\mathbf z_k}{\sum_{k=1}^{T} m_k} \in \mathbb R^{D}.
$$

The check recomputes $\mathbf e_j$ for a few real Food titles from the raw Hugging Face model
{cite}`wolf2020transformers` and compares with `xdtutor.encoders.TextEncoder` and with the cached
table the pipeline uses.
""")

b.code(r'''
from transformers import AutoModel, AutoTokenizer

from xdtutor.encoders import EncoderConfig, TextEncoder

titles = target.domain.texts[:5]
enc_config = EncoderConfig(**{k: getattr(config.encoder, k) for k in ("model", "pooling", "max_tokens")})
e_package = TextEncoder(enc_config, device="cpu").encode(titles, progress=False)      # (5, D)

# --- teaching code: mean pooling by hand ------------------------------------------------------
tok = AutoTokenizer.from_pretrained(enc_config.model_path)
lm = AutoModel.from_pretrained(enc_config.model_path).eval()
batch = tok(titles, padding=True, truncation=True, max_length=enc_config.max_tokens, return_tensors="pt")
with torch.no_grad():
    z = lm(**batch).last_hidden_state                                # (5, T, D) token states
m = batch["attention_mask"].unsqueeze(-1).float()                    # (5, T, 1) mask m_k
e_by_hand = ((z * m).sum(1) / m.sum(1)).numpy()                      # (5, D)

for t, n in zip(titles[:3], m.sum(1).squeeze(-1).int().tolist()):
    print(f"{n:3d} tokens  {t[:80]}")
assert np.allclose(e_package, e_by_hand, atol=1e-5)
assert np.allclose(prepared.target_emb[:5], e_by_hand, atol=1e-5)   # the cached table is the same thing
print(f"e_j by hand = TextEncoder.encode = cached table, to 1e-5 ({e_by_hand.shape[0]} titles, D = {e_by_hand.shape[1]})")
''')

b.md(r"""
The language model stays frozen. What the recommender learns on top is a small **adaptor**
$a_\phi : \mathbb R^D \to \mathbb R^H$ — here a two-layer MLP with a GELU — giving the item
representation used in the scores of 4.1:

$$
\mathbf v_j = a_\phi(\mathbf e_j) = W_2\,\mathrm{GELU}(W_1 \mathbf e_j + \mathbf b_1) + \mathbf b_2 .
$$

Because $\mathbf v_j$ depends on the item only through its text, the *same* $\phi$ gives a
representation to every item of a catalogue the model never saw — the property every transfer
strategy below relies on.
""")

b.code(r'''
net = model.adaptor.net                  # Dropout, Linear(D, 2H), GELU, Dropout, Linear(2H, H)
W1, b1, W2, b2 = net[1].weight, net[1].bias, net[4].weight, net[4].bias
with torch.no_grad():
    v_by_hand = F.gelu(E_t @ W1.T + b1) @ W2.T + b2        # (N, H), teaching code
    v_package = model.item_representations()               # (N, H)
assert torch.allclose(v_package, v_by_hand, atol=1e-5)
print(f"D = {W1.shape[1]} -> 2H = {W1.shape[0]} -> H = {W2.shape[0]}: item_representations() = MLP by hand, to 1e-5")
''')

# ------------------------------------------------------------------ 4.3 transfer
b.md(r"""
## 4.3 Transfer: θ_t = θ_s + Δθ

Pretraining on the source (Kitchen) gives parameters $\theta_s$ — the adaptor $\phi$, the position
table and the transformer; not the text table, which is data. Every transfer strategy starts the
target model at $\theta_s$ and differs only in **what $\Delta\theta$ is allowed to be**:

| strategy | target parameters | constraint on Δθ |
|---|---|---|
| zero-shot | $\theta_t = \theta_s$ | $\Delta\theta = 0$ |
| full fine-tune | $\theta_t = \theta_s + \Delta\theta$ | none |
| L2-SP {cite}`li2018l2sp` | $\theta_t = \theta_s + \Delta\theta$ | penalty $\alpha\lVert\Delta\theta\rVert_2^2$ |
| frozen encoder (UniSRec) | encoder $= \theta_s$ | $\Delta\theta$ only on the adaptor |
| LoRA {cite}`hu2022lora` | $W_t = W_s + \tfrac{\alpha}{r} B A$ | $\operatorname{rank}\Delta W \le r$ |
| fusion | $\mathbf v_j = g \odot a_t(\mathbf e_j) + (1-g) \odot a_s(\mathbf e_j)$ | $a_s$ frozen |

We need a real $\theta_s$: one short pretraining epoch on the CI-scale Kitchen sequences (chapter 3
trains it properly; the identities do not depend on how good $\theta_s$ is).
""")

b.code(r'''
import dataclasses

from xdtutor.extract_knowledge import extract_knowledge
from xdtutor.pretrain_source import pretrain_source
from xdtutor.transfer import TransferConfig
from xdtutor.transfer.base import build_target_model

one_epoch = dataclasses.replace(config.pretrain, epochs=1, seed=SEED, progress=False)
source_model = pretrain_source(prepared.sources, prepared.source_emb, config.model, one_epoch,
                               encoder_config=dataclasses.asdict(config.encoder), encoder_id=prepared.encoder_id)
knowledge = extract_knowledge(source_model, prepared.dataset, device="cpu")
theta_s = knowledge.theta
print(knowledge)
''')

b.md(r"""
**Zero-shot and full fine-tuning.** `build_target_model` puts $\theta_s$ into a model built on the
*Food* catalogue: at that point $\Delta\theta = 0$ exactly (zero-shot). Full fine-tuning then trains
everything; we run one epoch of it and look at $\Delta\theta$ block by block.
""")

b.code(r'''
from xdtutor.transfer import full_finetune


def named(m):
    return {k: p.detach() for k, p in m.named_parameters()}


start = build_target_model(knowledge, E_t)
assert all(torch.equal(named(start)[k], theta_s[k]) for k in theta_s)      # Δθ = 0 at the start

tconf = TransferConfig(train=dataclasses.replace(config.train, epochs=1, seed=SEED, progress=False))
ft = full_finetune.apply(knowledge, target, tconf, device="cpu", text_emb=E_t)
theta_t = named(ft.model)
delta = {k: theta_t[k] - theta_s[k] for k in theta_s}                       # Δθ = θ_t − θ_s
assert all(torch.allclose(theta_s[k] + delta[k], theta_t[k]) for k in theta_s)

import pandas as pd

blocks = pd.DataFrame([{"block": k.split(".")[0], "params": v.numel(), "dsq": float(v.pow(2).sum()),
                        "ssq": float(theta_s[k].pow(2).sum())} for k, v in delta.items()])
blocks = blocks.groupby("block", sort=False).sum()
blocks["relative change ‖Δθ‖/‖θ_s‖"] = (blocks["dsq"] / blocks["ssq"]).pow(0.5)
print(f"trainable: {ft.trainable_params:,} of {ft.total_params:,} parameters")
blocks[["params", "relative change ‖Δθ‖/‖θ_s‖"]]
''', tags=["nbval-ignore-output"])

b.md(r"""
**L2-SP** keeps $\Delta\theta$ small where the target data do not insist, by adding to the loss

$$
\Omega(\theta_t) = \alpha \sum_k \lVert \theta_{t,k} - \theta_{s,k} \rVert_2^2 = \alpha \lVert\Delta\theta\rVert_2^2 .
$$

Unlike weight decay ($\alpha\lVert\theta_t\rVert^2$, which pulls towards 0 and forgets the source)
it is **zero at $\theta_s$**, and so is its gradient $2\alpha\,\Delta\theta$. Checks: the package's
penalty is exactly 0 at the start, and equals $\alpha\lVert\Delta\theta\rVert^2$ by hand at the
fine-tuned model.
""")

b.code(r'''
from xdtutor.transfer.l2sp import L2SPPenalty

alpha = config.transfer.l2sp_alpha
penalty = L2SPPenalty(theta_s, alpha)
assert penalty(start).item() == 0.0                                         # Ω(θ_s) = 0 exactly
by_hand = alpha * sum(float(d.pow(2).sum()) for d in delta.values())        # α ‖Δθ‖², teaching code
print(f"Ω(θ_s) = {penalty(start).item()}   Ω(θ_t) package = {penalty(ft.model).item():.6g}   by hand = {by_hand:.6g}")
assert np.isclose(penalty(ft.model).item(), by_hand, rtol=1e-5)
''', tags=["nbval-ignore-output"])

b.md(r"""
**Frozen encoder (UniSRec's fine-tuning).** Only the adaptor learns, so the trainable count is the
adaptor's size: $\,D\cdot 2H + 2H + 2H\cdot H + H$ for the MLP adaptor.
""")

b.code(r'''
m = build_target_model(knowledge, E_t)
m.encoder.requires_grad_(False)                   # what xdtutor.transfer.frozen_adaptor does
from xdtutor.models import count_parameters

D, H = knowledge.text_dim, knowledge.hidden
expected = D * 2 * H + 2 * H + 2 * H * H + H
total, trainable = count_parameters(m)
print(f"D = {D}, H = {H}: trainable {trainable:,} = D·2H + 2H + 2H·H + H = {expected:,} (of {total:,})")
assert trainable == expected
''')

b.md(r"""
**LoRA** restricts the update of a weight matrix $W_s \in \mathbb R^{d_\text{out} \times d_\text{in}}$
to rank $r$:

$$
W_t = W_s + \frac{\alpha}{r} B A, \qquad B \in \mathbb R^{d_\text{out}\times r},\;
A \in \mathbb R^{r\times d_\text{in}},
$$

with $B = 0$ at the start, so the wrapped model starts *exactly* as the source model. It trains
$r(d_\text{in} + d_\text{out})$ numbers per matrix instead of $d_\text{in} d_\text{out}$.
`xdtutor.transfer.lora` uses the `peft` library (no hand-written LoRA); after training,
`merge_and_unload` folds $\tfrac{\alpha}{r}BA$ into $W$. Checks: (1) identity at the start,
(2) after giving $B$ random values, the merged weight equals $W_s + \tfrac{\alpha}{r}BA$ by hand and
the merged model scores exactly like the wrapped one, (3) the trainable count follows the formula.
""")

b.code(r'''
from xdtutor.transfer.lora import lora_target_names, wrap_lora

lconf = TransferConfig(lora_rank=config.transfer.lora_rank, lora_alpha=config.transfer.lora_alpha,
                       lora_train_adaptor=False)
base = build_target_model(knowledge, E_t).eval()
seq = inputs[:16]
with torch.no_grad():
    scores_s = base.score(seq)                                   # θ_s on the Food catalogue
peft_model = wrap_lora(build_target_model(knowledge, E_t), lconf).eval()
with torch.no_grad():
    assert torch.allclose(peft_model.score(seq), scores_s, atol=1e-6)   # (1) B = 0: identical to θ_s

# (2) give every B a random value, then merge
gen = torch.Generator().manual_seed(SEED)
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
layer = peft_model.base_model.model.encoder.layers[0].linear1
A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight     # (r, d_in), (d_out, r)
r, scale = lconf.lora_rank, lconf.lora_alpha / lconf.lora_rank
W_expected = (theta_s["encoder.layers.0.linear1.weight"] + scale * B @ A).detach()   # teaching code
fastpath_before = torch.backends.mha.get_fastpath_enabled()
with torch.no_grad():
    torch.backends.mha.set_fastpath_enabled(True)
    fast = peft_model.score(seq)                                 # PyTorch's fused inference path (see below)
    torch.backends.mha.set_fastpath_enabled(False)
    scores_wrapped = peft_model.score(seq)                       # the layer-by-layer path: W x + (α/r) B A x
torch.backends.mha.set_fastpath_enabled(fastpath_before)
merged = peft_model.merge_and_unload().eval()
with torch.no_grad():
    scores_merged = merged.score(seq)
W_merged = merged.encoder.layers[0].linear1.weight.detach()
print(f"rank r = {r}, α/r = {scale}; linear1: W {tuple(W_merged.shape)}, B {tuple(B.shape)}, A {tuple(A.shape)}")
print(f"rank of ΔW = {int(torch.linalg.matrix_rank(W_merged - theta_s['encoder.layers.0.linear1.weight']))}")
assert torch.allclose(W_merged, W_expected, atol=1e-6)
assert torch.allclose(scores_merged, scores_wrapped, atol=1e-4)
print(f"fused eval path ignores the adapters: {torch.allclose(fast, scores_s, atol=1e-6)}")
''')

b.md(r"""
```{admonition} Pitfall: fused inference kernels can bypass adapters
:class: warning
In evaluation mode (and without gradients) `torch.nn.TransformerEncoderLayer` may run a fused
"fast path" that reads each layer's weight tensors directly instead of calling its sub-modules. A
`peft`-wrapped layer keeps the base weight $W_s$ in that tensor and adds $\tfrac{\alpha}{r}BAx$ only in
its own `forward`, so on the fast path the wrapped model silently scores like $\theta_s$ — the last
line above shows it. The merged model is unaffected (its $W$ *is* $W_s + \tfrac{\alpha}{r}BA$), which is
why the check compares with the layer-by-layer path
(`torch.backends.mha.set_fastpath_enabled(False)`). Any code that evaluates an *unmerged* LoRA model
— for instance validation during LoRA training — must disable the fast path or merge first.
```
""")

b.code(r'''
# (3) trainable LoRA parameters = Σ r (d_in + d_out) over the wrapped matrices
counted = sum(p.numel() for n, p in wrap_lora(build_target_model(knowledge, E_t), lconf).named_parameters()
              if p.requires_grad)
shapes = []
for name in lora_target_names(build_target_model(knowledge, E_t)):
    if name.endswith("self_attn"):        # peft wraps the packed q,k,v projection and out_proj
        shapes += [(H, 3 * H), (H, H)]
    else:
        mod = dict(base.named_modules())[name]
        shapes.append((mod.in_features, mod.out_features))
formula = sum(r * (d_in + d_out) for d_in, d_out in shapes)
full = sum(d_in * d_out for d_in, d_out in shapes)
print(f"{len(shapes)} wrapped matrices: LoRA trains {formula:,} numbers instead of {full:,} ({formula / full:.1%})")
assert counted == formula
''')

b.md(r"""
**Fusion.** The target item representation combines a *target view* $\mathbf t_j = a_t(\mathbf e_j)$
(a fresh adaptor) with the *source view* $\mathbf s_j = a_s(\mathbf e_j)$ ($\theta_s$'s adaptor,
frozen). The learned gate is

$$
\mathbf g_j = \sigma\!\left(W_g [\mathbf t_j; \mathbf s_j] + \mathbf b_g\right), \qquad
\mathbf v_j = \mathbf g_j \odot \mathbf t_j + (1 - \mathbf g_j) \odot \mathbf s_j ,
$$

and "add" fusion is $\mathbf v_j = \mathbf t_j + \mathbf s_j$ — defined only when both are
$(N_t \times H)$ tables of the *same* items. The seed added embedding tables of different shapes;
the package refuses that with a clear error instead of broadcasting.
""")

b.code(r'''
from xdtutor.models import make_adaptor
from xdtutor.transfer.fusion import FusedAdaptor, FusionShapeError, fuse_add

src = build_target_model(knowledge, E_t)
fused = FusedAdaptor(src.adaptor, make_adaptor("mlp", D, H, 0.2), D, mode="gate").eval()
with torch.no_grad():
    t_view, s_view = fused.target(E_t), fused.source(E_t)                  # (N, H) each
    g = torch.sigmoid(torch.cat([t_view, s_view], -1) @ fused.gate.weight.T + fused.gate.bias)
    v_by_hand = g * t_view + (1 - g) * s_view                              # teaching code
    assert torch.allclose(fused(E_t), v_by_hand, atol=1e-6)
    assert torch.allclose(s_view, src.adaptor.eval()(E_t))                 # the source view is θ_s's adaptor
print(f"gate fusion by hand = FusedAdaptor: t, s, g and v are all {tuple(v_by_hand.shape)}")

kitchen_table = knowledge.item_reps[knowledge.source_names[0]]            # (N_s, H) source items
try:
    fuse_add(t_view, kitchen_table)                                        # the seed's mistake
except FusionShapeError as err:
    print("FusionShapeError:", str(err)[:160], "…")
''')

# ------------------------------------------------------------------ 4.4 EMCDR
b.md(r"""
## 4.4 The EMCDR mapping: least squares

For a user who has bought in Kitchen but never in Food, no target history exists. EMCDR
{cite}`man2017emcdr` learns a function $f$ from the source user representation $\mathbf x_u$
(the source model's state after the user's Kitchen history) to the target user representation
$\mathbf y_u$ (the target model's state after their Food history), on the overlapping users who have
both, and uses $f(\mathbf x_u)$ for cold users. The linear $f(\mathbf x) = W^\top\mathbf x + \mathbf c$
fitted by ridge least squares

$$
\min_{W, \mathbf c}\; \lVert Y - X W - \mathbf 1\mathbf c^\top\rVert_F^2 + \alpha\lVert W\rVert_F^2
$$

has the closed form (with $\bar X, \bar Y$ the column means and $X_c = X - \mathbf 1\bar X$,
$Y_c = Y - \mathbf 1\bar Y$)

$$
W = (X_c^\top X_c + \alpha I)^{-1} X_c^\top Y_c, \qquad \mathbf c = \bar Y - W^\top \bar X ,
$$

which for $\alpha = 0$ is ordinary least squares. Checks on the real overlapping users of our
subsample: the package's `RidgeMapping` equals NumPy's least squares ($\alpha = 0$) and the closed form
and scikit-learn's `Ridge` ($\alpha = 1$, the package default). The check also shows why the
default is ridge and not plain least squares: the user representations come out of a LayerNorm, so
they satisfy one exact linear constraint, $X_c^\top X_c$ is singular, and only $\alpha > 0$ makes
$W$ unique.
""")

b.code(r'''
from sklearn.linear_model import Ridge

from xdtutor.transfer.mapping import RidgeMapping, target_user_reps

rows = knowledge.user_index()
has = knowledge.user_has_history["train"]
pairs = [u for u in knowledge.user_keys if len(target.train.get(u, ())) > 0 and bool(has[rows[u]])]
X = knowledge.user_reps["train"][[rows[u] for u in pairs]].double().numpy()          # (n, H) source reps
Y = target_user_reps(ft.model, [target.train[u] for u in pairs], config.model.max_len).astype(np.float64)
print(f"{len(pairs)} overlapping users with a Kitchen history and Food training data; X {X.shape}, Y {Y.shape}")

# The user representations leave the encoder through a final LayerNorm (weight γ, bias β), so every
# row satisfies Σ_k (x_k − β_k) / γ_k = 0: [X 1] has an exactly degenerate direction and plain least
# squares has no unique W. We show the constraint, then check OLS on X without its last column.
ln = source_model.encoder.output_norm
constraint = ((X - ln.bias.detach().double().numpy()) / ln.weight.detach().double().numpy()).sum(1)
assert np.abs(constraint).max() < 1e-3 * np.abs(X).sum(1).max()
print(f"LayerNorm constraint holds for all {len(X)} users: |Σ_k (x_k − β_k)/γ_k| ≈ 0")

# alpha = 0: ordinary least squares with an intercept, by NumPy (on the non-degenerate columns)
Xr = X[:, :-1]
X1 = np.hstack([Xr, np.ones((len(Xr), 1))])
coef_ls, *_ = np.linalg.lstsq(X1, Y, rcond=None)
ols = RidgeMapping(alpha=0.0).fit(Xr, Y)
assert np.linalg.matrix_rank(X1) == X1.shape[1]
assert np.allclose(ols.coef_, coef_ls[:-1], atol=1e-5) and np.allclose(ols.intercept_, coef_ls[-1], atol=1e-5)

# alpha = 1: the closed form, and scikit-learn's Ridge
a = 1.0
Xc, Yc = X - X.mean(0), Y - Y.mean(0)
W = np.linalg.solve(Xc.T @ Xc + a * np.eye(X.shape[1]), Xc.T @ Yc)                # teaching code
c = Y.mean(0) - X.mean(0) @ W
ridge = RidgeMapping(alpha=a).fit(X, Y)
sk = Ridge(alpha=a).fit(X, Y)
assert np.allclose(ridge.coef_, W, atol=1e-6) and np.allclose(ridge.intercept_, c, atol=1e-6)
assert np.allclose(ridge.coef_, sk.coef_.T, atol=1e-6)
r2 = 1 - ((Y - ridge.transform(X)) ** 2).sum() / ((Y - Y.mean(0)) ** 2).sum()
print(f"ridge mapping: {ridge.n_params_:,} parameters; training R² = {r2:.3f}")
''', tags=["nbval-ignore-output"])

# ------------------------------------------------------------------ 4.5 metrics
b.md(r"""
## 4.5 The metrics

Evaluation ranks the **whole catalogue** for each test user (full ranking; sampled-negative metrics
are not comparable {cite}`krichene2020sampled`). With one held-out target per user and its 1-based
rank $r_u$:

$$
\mathrm{Recall@}K = \mathrm{HR@}K = \frac1{|U|}\sum_u \mathbb 1[r_u \le K], \qquad
\mathrm{NDCG@}K = \frac1{|U|}\sum_u \frac{\mathbb 1[r_u \le K]}{\log_2(r_u + 1)}
$$

(the ideal DCG with one relevant item is $1/\log_2 2 = 1$ {cite}`jarvelin2002ndcg`). The rank is
$r_u = 1 + \#\{j : s_{u,j} > s_{u,\text{target}}\}$ when ties are broken in the target's favour
("optimistic"), and $r_u = \#\{j : s_{u,j} \ge s_{u,\text{target}}\}$ when every tied item counts as
ranked ahead of it ("pessimistic"). The evaluation protocol names its tie rule (pessimistic by
default, so a scorer that gives many items the same value is not flattered), and
`xdtutor.metrics.count_ties` reports how many items tie with each target.

A worked example with four users and a catalogue of eight items:
""")

b.code(r'''
from xdtutor import metrics

scores = torch.tensor([[0.9, 0.1, 0.3, 0.2, 0.0, 0.5, 0.4, 0.6],    # user a: target item 0 -> rank 1
                       [0.9, 0.1, 0.3, 0.2, 0.0, 0.5, 0.4, 0.6],    # user b: target item 6 -> rank 4
                       [0.2, 0.8, 0.1, 0.7, 0.3, 0.0, 0.6, 0.5],    # user c: target item 2 -> rank 7
                       [0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.4, 0.0]])   # user d: target item 1, tied with 0 and 2
targets = torch.tensor([0, 6, 2, 1])
ranks = metrics.rank_of_target(scores, targets)
print("ranks (optimistic ties):", ranks.tolist(), "  tied items:", metrics.count_ties(scores, targets).tolist())
print("ranks (pessimistic ties):", metrics.rank_of_target(scores, targets, ties="pessimistic").tolist())

K = 5
by_hand = {"recall@5": (1 + 1 + 0 + 1) / 4,
           "ndcg@5": float(1 / np.log2(2) + 1 / np.log2(5) + 0 + 1 / np.log2(2)) / 4}   # teaching code
package = metrics.compute_all(ranks, [K])
print({k: round(package[k], 6) for k in by_hand}, "by hand:", {k: round(v, 6) for k, v in by_hand.items()})
assert ranks.tolist() == [1, 4, 7, 1]
assert all(np.isclose(package[k], v) for k, v in by_hand.items())
''')

b.md(r"""
The same numbers come out of `xdtutor.evaluate.evaluate`, which the pipeline uses on real test
users: it builds the score matrix with `model.score`, optionally masks the history, and calls the
functions above. We check it on the first test users of Food with the zero-shot model (θ_s on the
Food catalogue), recomputing their ranks by hand.
""")

b.code(r'''
from xdtutor.data import EvalSet
from xdtutor.evaluate import evaluate
from xdtutor.utils import pad_left

test = target.test
few = EvalSet(test.users[:50], test.histories[:50], np.asarray(test.targets[:50]))
result = evaluate(start, few, target.protocol, device="cpu")
with torch.no_grad():
    s = start.eval().score(pad_left(few.histories, target.protocol.max_len))          # (50, N)
if target.protocol.mask_history:                                                  # history items are removed
    for row, hist in enumerate(few.histories):
        keep_target = s[row, few.targets[row]].clone()
        s[row, torch.as_tensor(hist, dtype=torch.long)] = -float("inf")
        s[row, few.targets[row]] = keep_target
tgt_scores = s.gather(1, torch.as_tensor(few.targets)[:, None])
if target.protocol.ties == "pessimistic":                                         # teaching code
    ranks_by_hand = (s >= tgt_scores).sum(1).numpy()
else:
    ranks_by_hand = 1 + (s > tgt_scores).sum(1).numpy()
ndcg10 = np.where(ranks_by_hand <= 10, 1 / np.log2(ranks_by_hand + 1), 0).mean()
print(target.protocol.describe())
print(f"zero-shot on {len(few)} Food test users: NDCG@10 package {result.metrics['ndcg@10']:.4f}, by hand {ndcg10:.4f}")
assert np.array_equal(result.per_user["rank"].to_numpy(), ranks_by_hand)
assert np.isclose(result.metrics["ndcg@10"], ndcg10)
''', tags=["nbval-ignore-output"])

b.md(r"""
## Summary

| quantity | formula | checked against |
|---|---|---|
| objective | softmax CE over all $N$ items (or the batch's items) | `TextSeqRec.loss` |
| item text vector | masked mean of token states | `TextEncoder.encode`, the embedding cache |
| item representation | $W_2\,\mathrm{GELU}(W_1\mathbf e + \mathbf b_1) + \mathbf b_2$ | `item_representations` |
| full fine-tune | $\theta_t = \theta_s + \Delta\theta$ | `transfer.full_finetune` |
| L2-SP | $\alpha\lVert\theta_t - \theta_s\rVert^2$, 0 at $\theta_s$ | `transfer.l2sp.L2SPPenalty` |
| LoRA | $W_s + \tfrac{\alpha}{r}BA$, identity at start, $r(d_\text{in}+d_\text{out})$ trained | `peft` via `transfer.lora` |
| fusion (gate) | $\mathbf g\odot\mathbf t + (1-\mathbf g)\odot\mathbf s$ | `transfer.fusion.FusedAdaptor` |
| EMCDR | $(X_c^\top X_c + \alpha I)^{-1}X_c^\top Y_c$ | `transfer.mapping.RidgeMapping`, NumPy, scikit-learn |
| Recall / NDCG@K | $\mathbb 1[r \le K]$, $1/\log_2(r+1)$ | `xdtutor.metrics`, `xdtutor.evaluate` |
""")

b.md("## Exercises")
b.exercise("ex-04-ndcg", r"""
A user's target is ranked 3rd. What are their Recall@10, NDCG@10 and MRR@10? Check your answer with
`xdtutor.metrics`.
""", solution_code=r'''
r3 = np.array([3])
print(metrics.recall_at_k(r3, 10), metrics.ndcg_at_k(r3, 10), metrics.mrr_at_k(r3, 10))
assert metrics.ndcg_at_k(r3, 10)[0] == 0.5          # 1 / log2(4)
assert np.isclose(metrics.mrr_at_k(r3, 10)[0], 1 / 3)
''')
b.exercise("ex-04-lora", r"""
How many numbers does LoRA train per transformer layer of our model (H = 64, feed-forward width
4H = 256) at rank r = 8, counting the packed q,k,v projection, the attention output projection and
the two feed-forward matrices? What fraction of those four matrices' size is that?
""", solution_code=r'''
H_, r_ = 64, 8
mats = [(H_, 3 * H_), (H_, H_), (H_, 4 * H_), (4 * H_, H_)]         # (d_in, d_out)
lora = sum(r_ * (i + o) for i, o in mats)
dense = sum(i * o for i, o in mats)
print(f"{lora:,} LoRA numbers per layer vs {dense:,} weights ({lora / dense:.1%})")
assert lora == 8 * (256 + 128 + 320 + 320)
''')
b.exercise("ex-04-l2sp", r"""
L2-SP's penalty is zero at $\theta_s$. Does that mean it has no effect on the first gradient step?
And what happens to L2-SP as $\alpha \to \infty$?
""", solution_md=r"""
Yes: at $\theta_t = \theta_s$ the gradient of $\alpha\lVert\theta_t - \theta_s\rVert^2$ is
$2\alpha(\theta_t - \theta_s) = 0$, so the first step is plain fine-tuning. The penalty acts once
$\theta_t$ has moved, pulling each parameter back with a force proportional to how far it went. As
$\alpha \to \infty$ any movement is too expensive and L2-SP becomes zero-shot ($\Delta\theta = 0$);
at $\alpha = 0$ it is full fine-tuning.
""")

if __name__ == "__main__":
    print(b.write())
