"""Generate notebooks/03_algorithm.ipynb (chapter 3: the eight steps, run and measured)."""

from make_notebook_common import Book

b = Book("03_algorithm", "3. Algorithm: the eight steps, measured", [
    "run the eight steps — collect, preprocess, pretrain on the source, extract knowledge, transfer, fine-tune, validate, evaluate — end to end through `xdtutor`",
    "say which package function implements each step and what it hands to the next",
    "read the measured cost of each step: wall time, memory (peak resident memory and Python heap) and trainable parameters",
    "weigh the measured advantage of transfer (test NDCG@10 against a target-only model) against its measured cost",
])

b.md(r"""
Chapter 2 described the pipeline as a diagram. Here it runs. Each step is one call into the
package — the same calls `xdtutor.pipeline.run_experiment` makes for chapter 5 — wrapped in a small
meter that records

* **time**: wall-clock seconds of the step;
* **memory**: the increase of the process's *peak resident set size* (RSS, sampled every 5 ms by
  a background thread with `psutil`), which includes PyTorch's tensors, and the peak of Python-level
  allocations (`tracemalloc`), which does not;
* **trainable parameters** of whatever the step trains.

The configuration is the shipped Kitchen → Food experiment (`configs/kitchen_to_food.yaml`) at the
scale of this run, printed below: at CI scale a seeded small fraction of the users, a fraction of the
Kitchen users for pretraining, the catalogues compacted to the items those users touched, and two
epochs per training. Costs grow at full scale, but their *ratios* are what the chapter is about.
""")

b.code(r'''
import dataclasses
import threading
import tracemalloc

import numpy as np
import pandas as pd
import psutil

from xdtutor.pipeline import load_config

ROOT = pathlib.Path.cwd().resolve()
while not (ROOT / "pyproject.toml").exists() and ROOT != ROOT.parent:
    ROOT = ROOT.parent
config = load_config(ROOT / "configs" / "kitchen_to_food.yaml",
                     [("scale", SCALE), ("data.data_dir", DATA_DIR), ("device", DEVICE), ("seeds", [SEED])])
print(f"scale {config.scale}: data.subsample={config.data.subsample}, "
      f"data.source_subsample={config.data.source_subsample}, compact={config.data.compact}, "
      f"pretrain.epochs={config.pretrain.epochs}, train.epochs={config.train.epochs}")
''')

b.md("The meter (plain Python, not part of the method):")

b.code(r'''
class StepMeter:
    """Context manager: wall time, peak-RSS increase (sampled) and tracemalloc peak of one step."""

    def __init__(self, name, log):
        self.name, self.log, self.trainable = name, log, None

    def _sample(self):
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def __enter__(self):
        self._proc = psutil.Process()
        self._rss0 = self._peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        tracemalloc.start()
        self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self._t0
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self._stop.set()
        self._thread.join()
        rss1 = self._proc.memory_info().rss
        self._peak = max(self._peak, rss1)
        self.log.append({"step": self.name, "seconds": seconds,
                         "peak RSS increase (MB)": (self._peak - self._rss0) / 2**20,
                         "RSS after (MB)": rss1 / 2**20, "Python heap peak (MB)": py_peak / 2**20,
                         "trainable params": self.trainable})
        return False


steps = []
''')

# ---- step 1
b.md(r"""
## Step 1 — collect

`xdtutor.data.load_dataset` reads the verified files of the Food ↔ Kitchen release
{cite}`llmcdsr_repo,ni2019amazon`, keeps a seeded subsample of users, and splits the target
leave-one-out (last item = test, second-last = validation). Kitchen is the source.
""")
b.code(r'''
from xdtutor.data import load_dataset

with StepMeter("1 collect", steps):
    dataset = load_dataset(config.data.dataset, data_dir=DATA_DIR, subsample=config.data.subsample,
                           seed=config.data.seed, target=config.data.target)
t = dataset.target
print(f"target {t.domain.name}: {t.n_items:,} items, {len(t.train):,} training users, "
      f"{len(t.valid):,} valid / {len(t.test):,} test users; "
      f"source {dataset.sources[0].name}: {dataset.sources[0].n_users:,} users; overlap {len(dataset.overlap):,} users")
''')

# ---- step 2
b.md(r"""
## Step 2 — preprocess

`xdtutor.pipeline.collect` finishes the data side: it subsamples the source users, compacts the
catalogues at CI scale, and turns every item's **title** into a vector with the frozen language model
(`xdtutor.encoders.encode_texts`, all-MiniLM-L6-v2 {cite}`wang2020minilm`). Embeddings are cached on
disk by a hash of the model and the texts, so this step is expensive once and nearly free afterwards;
the cell reports which case this run was.
""")
b.code(r'''
from xdtutor.pipeline import collect

from xdtutor.paths import cache_dir

cached_before = set(cache_dir("embeddings").glob("*.safetensors"))
with StepMeter("2 preprocess (text -> vectors)", steps):
    prepared = collect(config, dataset=dataset)
embeddings_computed = bool(set(cache_dir("embeddings").glob("*.safetensors")) - cached_before)
''', tags=["nbval-ignore-output"])
b.code(r'''
target, source = prepared.dataset.target, prepared.sources[0]
print(f"target catalogue {target.n_items:,} items -> embeddings {prepared.target_emb.shape}")
print(f"source catalogue {source.n_items:,} items, {source.n_users:,} users -> embeddings {prepared.source_emb[0].shape}")
print(f"example title: {target.domain.texts[0][:90]!r}")
print(target.protocol.describe())
''')

# ---- step 3
b.md(r"""
## Step 3 — pretrain on the source

`xdtutor.pretrain_source.pretrain_source` (called by `pipeline.pretrain`) trains the text-based
recommender — adaptor + causal transformer over the frozen title vectors — on the Kitchen sequences
with the softmax objective of chapter 4 (over the whole catalogue at this scale; over the distinct items
of each batch at full scale, see 4.1), early-stopping on Kitchen's own validation NDCG@10.
This is the expensive, one-off investment that transfer hopes to amortise.
""")
b.code(r'''
from xdtutor.models import count_parameters
from xdtutor.pipeline import pretrain

with StepMeter("3 pretrain source", steps) as m:
    source_model = pretrain(config, prepared, SEED)
    m.trainable = count_parameters(source_model)[1]
h_src = source_model.pretrain_history
print(f"source model: {count_parameters(source_model)[0]:,} parameters; "
      f"best source valid NDCG@10 {h_src.best_metric:.4f} at epoch {h_src.best_epoch}")
''', tags=["nbval-ignore-output"])

# ---- step 4
b.md(r"""
## Step 4 — extract knowledge

`xdtutor.extract_knowledge.extract_knowledge` keeps what transfers: θ_s (every parameter except
catalogue-specific ones), the source items' representations, the representations of overlapping users
computed from their Kitchen history *before* each Food prediction point (no leakage), and the id of
the text encoder. It is a self-contained object that can be saved and shipped without any user data
(chapter 9 looks inside).
""")
b.code(r'''
from xdtutor.pipeline import extract

with StepMeter("4 extract knowledge", steps) as m:
    knowledge = extract(config, prepared, source_model)
    m.trainable = 0
print(repr(knowledge))
theta_mb = sum(v.numel() * v.element_size() for v in knowledge.theta.values()) / 2**20
print(f"θ_s occupies {theta_mb:.2f} MB in float32")
''', tags=["nbval-ignore-output"])

# ---- step 5
b.md(r"""
## Step 5 — transfer

`xdtutor.transfer` builds the target model on the **Food** catalogue and loads θ_s into it. Nothing is
trained yet: this *is* the zero-shot strategy, and it already ranks Food items it never saw, through
their titles. Which parameters may then move is the strategy's choice; this chapter follows the
config's headline strategy, full fine-tuning (`cold_start.strategy`), and chapter 5 runs all seven.
""")
b.code(r'''
from xdtutor.transfer import get_strategy

tconf = dataclasses.replace(config.transfer, train=dataclasses.replace(config.train, seed=SEED))
with StepMeter("5 transfer (θ_s -> Food)", steps) as m:
    zero = get_strategy("zero_shot").apply(knowledge, target, tconf, device=DEVICE, text_emb=prepared.target_emb)
    m.trainable = zero.trainable_params
print(zero)
''', tags=["nbval-ignore-output"])

# ---- step 6
b.md(r"""
## Step 6 — fine-tune on the target

The strategy trains on the Food training sequences with the one training loop of the package
(`xdtutor.finetune_target` → `xdtutor.train.fit`). For comparison we time, in the same way, the
**text-based target-only** model: the same architecture trained from a random start on Food alone —
the baseline that tells us whether the source helped.
""")
b.code(r'''
from xdtutor.pipeline import baselines

strategy = config.cold_start.strategy
with StepMeter(f"6 fine-tune ({strategy})", steps) as m:
    tuned = get_strategy(strategy).apply(knowledge, target, tconf, device=DEVICE, text_emb=prepared.target_emb)
    m.trainable = tuned.trainable_params
with StepMeter("6' target-only text model (baseline)", steps) as m:
    (text_only,) = baselines(config, prepared, SEED, names=["text"])
    m.trainable = text_only.trainable_params
print(tuned)
print(text_only)
''', tags=["nbval-ignore-output"])

# ---- step 7
b.md(r"""
## Step 7 — validate

Validation is not a separate pass in the pipeline: after every epoch `fit` ranks the full catalogue
for the validation users (each user's second-last Food item), keeps the best epoch by NDCG@10, and
stops when it has not improved for `patience` epochs. The curves are in the training histories; here
we also re-evaluate the restored best weights on the validation users explicitly and check that it
reproduces the recorded best value.
""")
b.code(r'''
from xdtutor.evaluate import evaluate
from xdtutor.plots import training_curves

with StepMeter("7 validate", steps) as m:
    valid = {name: evaluate(r.model, target.valid, target.protocol, device=DEVICE)
             for name, r in (("zero_shot", zero), (strategy, tuned), ("text (target only)", text_only))}
    m.trainable = 0
for name, r in ((strategy, tuned), ("text (target only)", text_only)):
    assert abs(valid[name].metrics["ndcg@10"] - r.history.best_metric) < 1e-4, name
fig, ax = plt.subplots(figsize=(6, 3.2))
training_curves({strategy: tuned.history, "text (target only)": text_only.history}, ax=ax)
ax.set_title("validation NDCG@10 per epoch (★ = restored epoch)")
fig.tight_layout()
pd.DataFrame({k: {"valid NDCG@10": v.metrics["ndcg@10"], "valid Recall@10": v.metrics["recall@10"]}
              for k, v in valid.items()}).T.round(4)
''', tags=["nbval-ignore-output"])

# ---- step 8
b.md(r"""
## Step 8 — evaluate

Finally every model ranks the whole Food catalogue for the test users (their last item), with the
protocol printed beside the numbers. Popularity is included as the floor any learned model must beat.
""")
b.code(r'''
with StepMeter("8 evaluate (test)", steps) as m:
    (popularity,) = baselines(config, prepared, SEED, names=["popularity"])
    runs = {"popularity": popularity, "text (target only)": text_only, "zero_shot": zero, strategy: tuned}
    test = {name: evaluate(r.model, target.test, target.protocol, device=DEVICE) for name, r in runs.items()}
    m.trainable = 0
print(target.protocol.describe())
results = pd.DataFrame({name: {"test NDCG@10": ev.metrics["ndcg@10"], "test Recall@10": ev.metrics["recall@10"],
                               "trainable params": runs[name].trainable_params}
                        for name, ev in test.items()}).T
results.style.format({"test NDCG@10": "{:.4f}", "test Recall@10": "{:.4f}", "trainable params": "{:,.0f}"})
''', tags=["nbval-ignore-output"])

# ---- costs
b.md(r"""
## The bill: time, memory and parameters per step
""")
b.code(r'''
cost = pd.DataFrame(steps).set_index("step")
cost.style.format({"seconds": "{:.1f}", "peak RSS increase (MB)": "{:.0f}", "RSS after (MB)": "{:.0f}",
                   "Python heap peak (MB)": "{:.1f}", "trainable params": lambda v: "" if pd.isna(v) else f"{v:,.0f}"})
''', tags=["nbval-ignore-output"])
b.code(r'''
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
labels = cost.index[::-1]
axes[0].barh(labels, cost["seconds"][::-1], color="tab:blue")
axes[0].set(xlabel="seconds", title="time per step")
axes[1].barh(labels, cost["peak RSS increase (MB)"][::-1], color="tab:orange")
axes[1].set(xlabel="MB", title="peak resident-memory increase per step")
fig.tight_layout()
''', tags=["nbval-ignore-output"])
b.code(r'''
sec = cost["seconds"]
pre_s = float(sec["3 pretrain source"])
ft_s = float(sec[f"6 fine-tune ({strategy})"])
base_s = float(sec["6' target-only text model (baseline)"])
n_t, n_b = test[strategy].metrics["ndcg@10"], test["text (target only)"].metrics["ndcg@10"]
n_z = test["zero_shot"].metrics["ndcg@10"]
glue("pretrain_seconds", pre_s, display=False)
glue("finetune_seconds", ft_s, display=False)
glue("baseline_seconds", base_s, display=False)
glue("ndcg_transfer", n_t, display=False)
glue("ndcg_text_only", n_b, display=False)
glue("ndcg_zero_shot", n_z, display=False)
glue("relative_gain", n_t / n_b - 1 if n_b > 0 else float("nan"), display=False)
glue("embed_seconds", float(sec["2 preprocess (text -> vectors)"]), display=False)
glue("embed_state", Markdown("the language model embedded the titles and wrote them to the cache"
                             if embeddings_computed else "the embeddings were read from the on-disk cache"),
     display=False)
heavy = cost["peak RSS increase (MB)"].idxmax()
glue("heavy_step", Markdown(f"*{heavy}*"), display=False)
glue("heavy_mb", float(cost.loc[heavy, "peak RSS increase (MB)"]), display=False)
glue("theta_mb", theta_mb, display=False)
glue("theta_params", knowledge.n_theta, display=False)
glue("first_epoch_transfer", float(tuned.history.valid_metrics[0]["ndcg@10"]), display=False)
glue("first_epoch_text", float(text_only.history.valid_metrics[0]["ndcg@10"]), display=False)
glue("strategy_name", Markdown(f"`{strategy}`"), display=False)
''', tags=["remove-input", "nbval-ignore-output"])

b.md(r"""
**Reading the bill (numbers from this run).** Pretraining on Kitchen took
{glue:text}`pretrain_seconds:.0f` s; fine-tuning with {glue:md}`strategy_name` took
{glue:text}`finetune_seconds:.1f` s, against {glue:text}`baseline_seconds:.1f` s for training the same
architecture on Food alone. The test NDCG@10 of the transferred model is
{glue:text}`ndcg_transfer:.4f` against {glue:text}`ndcg_text_only:.4f` for the target-only model
(relative change {glue:text}`relative_gain:+.1%`), and θ_s on its own — zero-shot, no Food training at
all — reaches {glue:text}`ndcg_zero_shot:.4f`.

What the measurements say, step by step:

* **Text embedding (step 2) is paid once per catalogue**, not once per experiment: it took
  {glue:text}`embed_seconds:.1f` s in this run, where {glue:md}`embed_state`. On a cold cache it is the
  most expensive data step (a forward pass of the language model per title); afterwards it is a file read.
* **Pretraining is the investment.** It is paid once per source and reused by every strategy, every
  target and every seed; the knowledge it produces is small ({glue:text}`theta_params:,d` numbers
  in θ_s).
* **Fine-tuning costs about what training from scratch costs** per epoch — the architecture is
  the same — so what transfer can offer is not cheaper epochs but a better starting point. In this run
  the validation NDCG@10 after the first epoch was {glue:text}`first_epoch_transfer:.4f` for the
  transferred model against {glue:text}`first_epoch_text:.4f` for the target-only one, and the
  zero-shot model needs no target epoch at all.
* **Memory**: the largest peak increase came from {glue:md}`heavy_step` (+{glue:text}`heavy_mb:.0f` MB).
  Training memory is dominated by the softmax scores of a batch against the whole catalogue
  (batch × positions × N numbers, plus their gradients), not by the recommender's parameters
  (θ_s is {glue:text}`theta_mb:.2f` MB).

At CI scale (two epochs, a few hundred users) none of these numbers is a verdict on transfer; chapter 5
shows the full-scale comparison with a significance test (read its notes: the committed run's seeds and
time caps are printed with it).
""")

b.md("## Exercises")
b.exercise("ex-03-frozen", r"""
Repeat steps 6–8 with the `frozen_adaptor` strategy (UniSRec's fine-tuning: transformer frozen,
only the adaptor trains). How many parameters does it train compared with full fine-tuning, and is it
faster per epoch?
""", solution_code=r'''
with StepMeter("6 fine-tune (frozen_adaptor)", steps) as m:
    frozen = get_strategy("frozen_adaptor").apply(knowledge, target, tconf, device=DEVICE,
                                                   text_emb=prepared.target_emb)
    m.trainable = frozen.trainable_params
ev = evaluate(frozen.model, target.test, target.protocol, device=DEVICE)
print(f"frozen_adaptor trains {frozen.trainable_params:,} of {frozen.total_params:,} parameters "
      f"({frozen.trainable_params / tuned.trainable_params:.0%} of full fine-tuning); "
      f"{np.mean(frozen.history.epoch_seconds):.1f} s/epoch vs {np.mean(tuned.history.epoch_seconds):.1f} s/epoch; "
      f"test NDCG@10 {ev.metrics['ndcg@10']:.4f}")
assert frozen.trainable_params < tuned.trainable_params
''', tags=["nbval-ignore-output"])
b.exercise("ex-03-amortise", r"""
Suppose you have three target domains. Using the times measured above, estimate the total training
time of (a) one text-based target-only model per target and (b) one pretraining plus one fine-tuning
per target. When does transfer pay off in time, as opposed to in accuracy?
""", solution_md=r"""
(a) is about $3\,t_\text{baseline}$, (b) is $t_\text{pretrain} + 3\,t_\text{fine-tune}$. Because
fine-tuning and target-only training cost about the same per epoch, transfer never saves *time* per
target unless it converges in fewer epochs (early stopping often stops it sooner because it starts
closer to a good solution) or the target is served zero-shot. Its case is accuracy where target data
are scarce (chapter 5's cold-start curve) and the one-off pretraining cost, shared by all targets.
""")

if __name__ == "__main__":
    print(b.write())
