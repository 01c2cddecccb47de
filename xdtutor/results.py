"""The results of a run: one model for writing, reading, combining and comparing them.

A run (:func:`xdtutor.pipeline.run_experiment`) fills a :class:`Results`; :meth:`Results.save`
writes a folder (``results.json`` + ``per_user.csv`` + figures), :meth:`Results.load` reads that
folder or a committed ``results/<name>.json`` back, :func:`combine` merges runs of the same
experiment with different seeds (seeds run as separate processes), and :func:`find_results`
finds the committed files of an experiment, and :func:`seed_difference_across` compares a method
of one file with one of another run of the same experiment. Everything a reader sees — a table, a gain, a test, a
budget warning — is computed here from those rows and rendered by :mod:`xdtutor.report` and :mod:`xdtutor.readings`.

Spread is the **sample** standard deviation over seeds (``ddof=1``); with one seed it is undefined
(``NaN``, shown as "n = 1"), never 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .config import ConfigError, flatten, without_seed_override
from .evaluate import EvalResult
from .experiment import NOT_RESULTS, ExperimentConfig, build_config
from .finetune_target import TrainedModel
from .protocol import Protocol
from .stats import paired_difference, per_user_frame, seed_difference, with_seed_t
from .results_upgrade import FORMAT, upgrade
from .train import History
from .utils import atomic_write, write_json

METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")
#: Top-level keys of ``results.json`` that are not run information (``info``).
_FIELDS = ("format", "name", "config", "methods", "runs", "source_pretraining", "gain", "comparisons",
           "cold_users", "cold_start", "diagnostics", "histories")

#: The Kitchen -> Food results that retrain menu methods with values a validation search chose
#: (``configs/<name>.yaml``; the last also pretrains θ_s with them); README/FAQ findings and chapter 5.8
#: read them from this list.
K2F_RETRAINED = ("kitchen_to_food_tuned", "kitchen_to_food_fusion_tuned", "kitchen_to_food_fusion_dropout",
                 "kitchen_to_food_source_tuned")


#: (method, vs, about) compared whenever both ran, beside the main comparisons:
PAIRS = (
    # the language model vs IDs on the same cross-domain histories
    ("mixed_history", "sasrec_mixed", "cross-domain histories"),
    ("text_mixed", "sasrec_mixed", "cross-domain histories"),
    # what an ID embedding per target item adds: without the source, and on top of θ_s
    ("text_id", "text", "ID embedding"),
    ("transductive", "full_finetune", "ID embedding"),
    ("frozen_adaptor_id", "frozen_adaptor", "ID embedding"),
    # UniSRec's text + ID fine-tuning (encoder frozen) against the same model with everything trained
    ("frozen_adaptor_id", "transductive", "frozen vs trained encoder"),
    # whether θ_s and the source items in the histories add up
    ("mixed_history", "text_mixed", "θ_s and source items"),
    ("mixed_history", "full_finetune", "θ_s and source items"),
    # the source's data in one training vs θ_s carried into a second one
    ("joint", "full_finetune", "joint vs pretrain-then-fine-tune"),
    # θ_s with no target training against the popularity prior it lacks (in-batch pretraining)
    ("zero_shot", "popularity", "zero-shot vs popularity"),
    # what the menu's other ways of carrying θ_s cost or buy against plain full fine-tuning: a penalty
    # towards θ_s, fewer trainable parameters (frozen encoder, LoRA), the text feature fused in again
    ("l2sp", "full_finetune", "vs full fine-tuning"),
    ("frozen_adaptor", "full_finetune", "vs full fine-tuning"),
    ("lora", "full_finetune", "vs full fine-tuning"),
    ("lora_adaptor", "full_finetune", "vs full fine-tuning"),
    ("fusion", "full_finetune", "vs full fine-tuning"),
)

@dataclass(eq=False)
class Results:
    """Everything a run produced (``to_dict`` is what ``results.json`` holds).

    Attributes:
        config: The config that ran.
        rows: One dict per (method, seed): ``method``, ``kind`` (baseline | transfer), ``seed``,
            ``metrics`` (test), ``valid`` (validation metrics of the final model), ``by_user_type``
            (overlap / target_only), ``valid_ndcg@10``, ``best_epoch``, ``stop_reason``,
            ``total_params``, ``trainable_params``, ``train_seconds``, ``users``.
        per_user: Test metrics per user (method, seed, user, user_type, rank, metric columns).
        histories: ``"method/seed"`` -> training :class:`~xdtutor.train.History`.
        cold_users: Rows for users with hidden target history (EMCDR mappings vs popularity).
        cold_start: Rows ``{fraction, method, seed, train_users, metrics}`` of the feature-scarcity curve.
        diagnostics: Domain similarity of the catalogues' text embeddings.
        comparisons: Each headline difference with its 95 % interval over seeds and users
            (:func:`xdtutor.stats.paired_difference`), computed from ``per_user`` by
            :meth:`compare_all`; kept as loaded when a file has no per-user rows.
        source_runs: Source pretraining per seed (source validation NDCG@10, time).
        info: Protocol, dataset statistics, provenance (device, versions, commit, date), wall time.
    """

    config: ExperimentConfig
    rows: list[dict] = field(default_factory=list)
    per_user: pd.DataFrame = field(default_factory=pd.DataFrame)
    histories: dict[str, History] = field(default_factory=dict)
    cold_users: list[dict] = field(default_factory=list)
    cold_start: list[dict] = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    comparisons: list[dict] = field(default_factory=list)
    source_runs: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ filling (the pipeline)

    def add(self, trained: TrainedModel, seed: int, test: EvalResult, valid: EvalResult,
            overlap: frozenset[str]) -> dict:
        """Record one trained model's validation and test evaluation; returns its row."""
        pu = test.per_user
        is_ovl = pu["user"].isin(overlap)
        groups = {}
        for g, mask in (("overlap", is_ovl), ("target_only", ~is_ovl)):
            if mask.any():
                groups[g] = {m: float(pu.loc[mask, m].mean()) for m in ("recall@10", "ndcg@10")}
                groups[g]["users"] = int(mask.sum())
        h = trained.history
        row = {"method": trained.name, "kind": trained.kind, "seed": seed, "metrics": dict(test.metrics),
               "valid": dict(valid.metrics), "by_user_type": groups,
               "valid_ndcg@10": float(valid.metrics["ndcg@10"]),
               "best_epoch": None if h is None else int(h.best_epoch),
               "stop_reason": None if h is None else h.stop_reason,
               "train_seconds": 0.0 if h is None else float(h.total_seconds),
               "total_params": int(trained.total_params), "trainable_params": int(trained.trainable_params),
               "users": test.n_users}
        self.rows.append(row)
        if h is not None:
            self.histories[f"{trained.name}/{seed}"] = h
        self._add_per_user(trained.name, seed, test, np.where(is_ovl, "overlap", "target_only"))
        return row

    def add_cold_user(self, row: dict, test: EvalResult) -> None:
        """Record a cold-user evaluation (its per-user rows go in as method ``cold:<name>``)."""
        self.cold_users.append(row)
        self._add_per_user(f"cold:{row['method']}", row["seed"], test, "cold")

    def add_curve_point(self, row: dict, test: EvalResult) -> None:
        """Record a point of the cold-start curve (per-user rows as method ``curve:<fraction>:<name>``)."""
        self.cold_start.append(row)
        self._add_per_user(curve_key(row["fraction"], row["method"]), row["seed"], test, "curve")

    def mark(self) -> tuple[int, int, int, frozenset, int]:
        """Where the results stand now (see :meth:`since`)."""
        return (len(self.rows), len(self.cold_users), len(self.cold_start), frozenset(self.histories),
                len(self.per_user))

    def since(self, mark: tuple) -> tuple[dict, pd.DataFrame]:
        """What was added after ``mark``: ``(payload, per_user rows)`` — what :meth:`restore` takes back."""
        rows, cold, curve, hist, n = mark
        payload = {"rows": self.rows[rows:], "cold_users": self.cold_users[cold:], "cold_start": self.cold_start[curve:],
                   "histories": {k: h.to_dict() for k, h in self.histories.items() if k not in hist}}
        return payload, self.per_user.iloc[n:]

    def restore(self, payload: dict, per_user: pd.DataFrame) -> None:
        """Add back what :meth:`since` returned (a run resumed from its folder)."""
        self.rows += payload["rows"]
        self.cold_users += payload["cold_users"]
        self.cold_start += payload["cold_start"]
        self.histories.update({k: History.from_dict(h) for k, h in payload["histories"].items()})
        if not per_user.empty:
            self.per_user = per_user if self.per_user.empty else pd.concat([self.per_user, per_user], ignore_index=True)

    def _add_per_user(self, method: str, seed: int, test: EvalResult, user_type) -> None:
        frame = per_user_frame({(method, seed): test})
        frame.insert(3, "user_type", user_type)
        self.per_user = frame if self.per_user.empty else pd.concat([self.per_user, frame], ignore_index=True)

    # ------------------------------------------------------------------ reading

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def protocol(self) -> Protocol:
        proto = self.info.get("protocol")
        if not proto:
            raise ValueError("these results have no info['protocol']")
        return Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in proto.items()})

    def kinds(self) -> dict[str, str]:
        """method -> ``"baseline"`` | ``"transfer"``."""
        return {r["method"]: r["kind"] for r in self.rows}

    def summary(self, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
        """Mean and sample std over seeds per method: columns ``<metric>``, ``<metric>_std``,
        ``seeds``, parameters, training seconds and NDCG@10 by user type (means)."""
        if not self.rows:
            return pd.DataFrame(columns=["method", "kind", "seeds", *metrics])
        recs = []
        for r in self.rows:
            rec = {"method": r["method"], "kind": r["kind"], "seed": r["seed"],
                   "trainable_params": r["trainable_params"], "total_params": r["total_params"],
                   "train_seconds": r["train_seconds"]}
            rec.update({m: r["metrics"].get(m, np.nan) for m in metrics})
            for group, vals in r.get("by_user_type", {}).items():
                rec[f"ndcg@10[{group}]"] = vals.get("ndcg@10", np.nan)
            recs.append(rec)
        df = pd.DataFrame(recs)
        groups = df.groupby(["method", "kind"], sort=False)
        value_cols = [c for c in df.columns if c not in ("method", "kind", "seed")]
        out = groups[value_cols].mean().join(groups[list(metrics)].std(ddof=1).add_suffix("_std")).reset_index()
        out["seeds"] = groups["seed"].count().to_numpy()
        return out

    def test_values(self, method: str, metric: str = "ndcg@10") -> list[float]:
        """``method``'s test ``metric``, one value per seed row (in the file's order).

        Raises:
            KeyError: If the file has no rows of ``method``.
        """
        values = [r["metrics"][metric] for r in self.rows if r["method"] == method]
        if not values:
            raise KeyError(f"no rows for {method!r} in {self.name}")
        return values

    def valid_means(self, metric: str = "ndcg@10") -> pd.Series:
        """method -> mean over seeds of the *validation* metric (methods without one are left out)."""
        recs = [{"method": r["method"], metric: (r.get("valid") or {}).get(metric, r.get(f"valid_{metric}"))}
                for r in self.rows]
        df = pd.DataFrame(recs, columns=["method", metric]).dropna()
        return df.groupby("method", sort=False)[metric].mean()

    def best(self, kind: str, metric: str = "ndcg@10") -> tuple[str, float] | None:
        """``(method, mean test metric)`` of the method of ``kind`` (baseline | transfer) whose mean
        *validation* metric is highest: the test set is never used to choose."""
        valid = self.valid_means(metric)
        candidates = [m for m, k in self.kinds().items() if k == kind and m in valid.index]
        if not candidates:
            return None
        chosen = max(candidates, key=lambda m: valid[m])
        test = self.summary().set_index("method")[metric]
        return chosen, float(test[chosen])

    def comparison(self, method: str, vs: str, metric: str = "ndcg@10") -> dict | None:
        """The stored comparison ``method − vs`` on ``metric`` (``None`` when it was not made)."""
        return next((c for c in self.comparisons
                     if c["method"] == method and c["vs"] == vs and c.get("metric", metric) == metric), None)

    def gain(self, metric: str = "ndcg@10") -> dict | None:
        """The best transfer method vs the best target-only baseline, both chosen on validation.

        Returns:
            ``{"metric", "best_transfer", "transfer", "best_baseline", "baseline", "relative_gain",
            "selected_on": "validation", "comparison"}`` (test means; ``comparison`` holds the
            interval when one was computed).
        """
        bt, bb = self.best("transfer", metric), self.best("baseline", metric)
        if bt is None or bb is None or bb[1] == 0:
            return None
        return {"metric": metric, "best_transfer": bt[0], "transfer": bt[1], "best_baseline": bb[0],
                "baseline": bb[1], "relative_gain": bt[1] / bb[1] - 1.0, "selected_on": "validation",
                "comparison": self.comparison(bt[0], bb[0], metric)}

    def gain_vs(self, baseline: str = "text", metric: str = "ndcg@10") -> dict | None:
        """The best transfer method (chosen on validation) vs one named baseline, e.g. the same
        architecture trained on the target only.

        Returns:
            ``{"best_transfer", "transfer", "baseline", "baseline_value", "relative_gain", "comparison"}``
            or ``None`` when the baseline or every transfer method is missing.
        """
        bt = self.best("transfer", metric)
        s = self.summary().set_index("method")
        if bt is None or baseline not in s.index:
            return None
        base = float(s.loc[baseline, metric])
        return {"best_transfer": bt[0], "transfer": bt[1], "baseline": baseline, "baseline_value": base,
                "relative_gain": bt[1] / base - 1.0 if base else math.nan,
                "comparison": self.comparison(bt[0], baseline, metric)}

    def compare(self, a: str, b: str, metric: str = "ndcg@10", **kwargs) -> dict:
        """``a − b`` with its interval over seeds and users (:func:`xdtutor.stats.paired_difference`)."""
        return paired_difference(self.per_user, a, b, metric, **kwargs)

    def seed_values(self, key: str, metric: str = "ndcg@10") -> dict[int, float]:
        """seed -> test ``metric`` of a comparison's side: a method of the main table, a cold-user row
        (``"cold:<method>"``) or a cold-start curve point (``"curve:<fraction>:<method>"``, :func:`curve_key`)."""
        if key.startswith("cold:"):
            rows = [r for r in self.cold_users if r["method"] == key[len("cold:"):]]
        elif key.startswith("curve:"):
            rows = [r for r in self.cold_start if curve_key(r["fraction"], r["method"]) == key]
        else:
            rows = [r for r in self.rows if r["method"] == key]
        return {int(r["seed"]): float(r["metrics"][metric]) for r in rows}

    def with_seed_intervals(self) -> "Results":
        """These results with every stored comparison widened to the paired *t* interval over its seeds
        (:func:`xdtutor.stats.with_seed_t`, from the per-seed rows of this file): for files whose
        intervals were computed by the two-level bootstrap alone. Comparisons without an interval or with
        one seed are kept as they are.

        Raises:
            ValueError: If a comparison's seeds are not all in this file's rows of both its sides.
        """
        out = []
        for c in self.comparisons:
            a, b = (self.seed_values(c[k], c.get("metric", "ndcg@10")) for k in ("method", "vs"))
            seeds = sorted(set(a) & set(b))
            if c.get("diff_low") is not None and (c.get("seeds") or 0) > 1 and len(seeds) != c["seeds"]:
                raise ValueError(f"{self.name}: {c['method']} vs {c['vs']} has {c['seeds']} seeds, its rows "
                                 f"{len(seeds)}")
            out.append(with_seed_t(c, [a[s] - b[s] for s in seeds]))
        return replace(self, comparisons=out)

    def seed_difference(self, a: str, b: str, metric: str = "ndcg@10", level: float = 0.95) -> dict:
        """``a − b`` with a Welch interval over the seeds' test means (:func:`seed_difference_across` within
        one file): the interval a file without per-user rows (format 1) allows; seed variation only."""
        return seed_difference_across(self, a, self, b, metric, level)

    def compare_all(self, metric: str = "ndcg@10") -> list[dict]:
        """The comparisons a reader needs, each with its interval (needs ``per_user``):

        * every transfer method vs the best baseline (chosen on validation), and — when they ran and
          are not the best baseline — vs ``text`` and ``text_id`` (the text models without the source;
          the one with the transfer's architecture is the like-for-like reference, the other is
          stored too) and vs ``sasrec`` (the classic ID model);
        * ``text_id`` vs ``text``, ``transductive`` vs ``full_finetune`` and ``frozen_adaptor_id`` vs
          ``frozen_adaptor``: what an ID embedding per item adds, without the source and on top of θ_s;
          ``frozen_adaptor_id`` vs ``transductive``: the same text + ID model with the sequence encoder
          frozen (UniSRec's way) or trained;
        * on cross-domain histories: ``mixed_history`` and ``text_mixed`` vs ``sasrec_mixed`` (text
          vs IDs on the same data; ``sasrec_mixed`` vs ``sasrec`` and ``text_mixed`` vs ``text``
          above say what the source items add to each model);
        * ``mixed_history`` vs ``text_mixed`` and vs ``full_finetune``: what θ_s adds to the mixed
          histories, and what the source items add to θ_s; ``joint`` vs ``full_finetune`` (one training
          on both domains vs pretrain-then-fine-tune); every other way of carrying θ_s (L2-SP, frozen
          encoder + adaptor, LoRA, fusion) vs ``full_finetune`` — all of :data:`PAIRS`;
        * cold users: every mapping vs popularity (``cold:`` methods);
        * the cold-start curve: at every fraction, the strategy vs each baseline (``curve:`` methods).
        """
        if self.per_user.empty:
            return list(self.comparisons)
        out = []
        bb = self.best("baseline", metric)
        kinds = self.kinds()
        refs = [bb[0]] if bb else []
        for name in ("text", "text_id", "sasrec"):  # the same models without the source; the classic ID model
            if kinds.get(name) == "baseline" and name not in refs:
                refs.append(name)
        for ref in refs:
            out += [{**self.compare(m, ref, metric), "about": "main"} for m, k in kinds.items() if k == "transfer"]
        for a, b, about in PAIRS:
            if a in kinds and b in kinds:
                out.append({**self.compare(a, b, metric), "about": about})
        cold = sorted({r["method"] for r in self.cold_users} - {"popularity"})
        if cold and any(r["method"] == "popularity" for r in self.cold_users):
            out += [{**self.compare(f"cold:{m}", "cold:popularity", metric), "about": "cold users"} for m in cold]
        strategy = self.config.cold_start.strategy
        for fraction in sorted({r["fraction"] for r in self.cold_start}):
            for base in sorted({r["method"] for r in self.cold_start if r["fraction"] == fraction} - {strategy}):
                out.append({**self.compare(curve_key(fraction, strategy), curve_key(fraction, base), metric),
                            "about": f"cold start {fraction:g}"})
        return out

    def cold_user_gain(self, metric: str = "ndcg@10") -> dict | None:
        """The cold-user mapping chosen on validation (``selected`` rows) vs popularity, mean over
        seeds (``None`` without cold-user rows)."""
        rows = pd.DataFrame([{"method": r["method"], "seed": r["seed"], metric: r["metrics"][metric],
                              "selected": bool(r.get("selected", False))} for r in self.cold_users])
        if rows.empty or "popularity" not in set(rows["method"]):
            return None
        mean = rows.groupby("method")[metric].mean()
        chosen = sorted(set(rows.loc[rows["selected"], "method"]))
        if len(chosen) != 1:  # format-1 files chose nothing on validation: no headline
            return None
        best = chosen[0]
        return {"best_mapping": best, "mapping": float(mean[best]), "popularity": float(mean["popularity"]),
                "relative_gain": float(mean[best] / mean["popularity"] - 1.0), "seeds": int(rows["seed"].nunique()),
                "comparison": self.comparison(f"cold:{best}", "cold:popularity", metric)}

    def stop_reasons(self) -> pd.DataFrame:
        """Why every training ended: one row per (what, seed) with ``stop_reason``, epochs, seconds.

        ``what`` is ``"source"`` for pretraining and the method name for target trainings; methods
        without training (popularity, zero-shot) have no history and are left out.
        """
        rows = []
        for key, h in self.histories.items():
            what, _, seed = key.rpartition("/")
            if not h.epochs:
                continue
            rows.append({"what": what, "seed": int(seed) if seed.isdigit() else seed,
                         "stop_reason": h.stop_reason or "?", "epochs": len(h.epochs),
                         "best_epoch": h.best_epoch, "seconds": h.total_seconds})
        return pd.DataFrame(rows, columns=["what", "seed", "stop_reason", "epochs", "best_epoch", "seconds"])

    def time_caps(self) -> dict[str, float | None]:
        """The shared time caps (minutes) of source pretraining and of the target trainings
        (a method's ``per_method`` cap, if any, is :meth:`time_cap`'s)."""
        return {s: getattr(self.config, s).max_train_minutes for s in ("pretrain", "train")}

    def time_cap(self, what: str) -> float | None:
        """The cap (minutes) training ``what`` ran under: ``"source"`` (pretraining) or a method,
        whose own ``per_method`` setting wins over the shared one."""
        if what == "source":
            return self.config.pretrain.max_train_minutes
        if what not in self.config.per_method:  # also names no longer in the config (older files)
            return self.config.train.max_train_minutes
        return self.config.for_method(what).train.max_train_minutes

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict:
        s = self.summary()
        return {
            "format": FORMAT,
            "name": self.config.name,
            "config": self.config.to_dict(),
            **self.info,
            "methods": {r["method"]: {"kind": r["kind"], "seeds": int(r["seeds"]),
                                      "metrics": {m: float(r[m]) for m in METRICS},
                                      "std": {m: float(r[m + "_std"]) for m in METRICS},
                                      "trainable_params": int(r["trainable_params"]),
                                      "total_params": int(r["total_params"]),
                                      "train_seconds": float(r["train_seconds"])}
                        for _, r in s.iterrows()},
            "runs": self.rows,
            "source_pretraining": self.source_runs,
            "gain": self.gain(),
            "comparisons": self.comparisons,
            "cold_users": self.cold_users,
            "cold_start": self.cold_start,
            "diagnostics": self.diagnostics,
            "histories": {k: h.to_dict() for k, h in self.histories.items()},
        }

    def save(self, out: str | Path) -> Path:
        """Write ``results.json`` and ``per_user.csv`` into the folder ``out`` (figures and the
        Markdown report: :func:`xdtutor.report.write_run`)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "results.json", self.to_dict())
        with atomic_write(out / "per_user.csv", "w") as fh:
            self.per_user.to_csv(fh, index=False)
        return out

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        """Read a run folder written by :meth:`save`, or a results JSON file (e.g. ``results/x.json``).

        Files written before the config sections were reorganised (no ``format`` field) are
        upgraded on reading (:func:`upgrade`).

        Raises:
            FileNotFoundError: No such file or folder.
            ConfigError: Not valid JSON (with its line), or fields missing.
        """
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        try:
            d = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{file}: no results file (was the run saved with Results.save?)") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{file}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{file}: not a results file (the top level is not a mapping)")
        d = upgrade(d)
        missing = sorted(k for k in _FIELDS if k not in d)
        if missing:
            raise ConfigError(f"{file}: missing field(s) {missing}")
        per_user_path = file.parent / "per_user.csv" if file.name == "results.json" else None
        per_user = (pd.read_csv(per_user_path, dtype={"user": str})
                    if per_user_path is not None and per_user_path.is_file() and per_user_path.stat().st_size > 1
                    else pd.DataFrame())
        return cls(config=build_config(d["config"], where=str(file)), rows=d["runs"], per_user=per_user,
                   histories={k: History.from_dict(h) for k, h in d["histories"].items()},
                   cold_users=d["cold_users"], cold_start=d["cold_start"], diagnostics=d["diagnostics"],
                   comparisons=d["comparisons"], source_runs=d["source_pretraining"],
                   info={k: v for k, v in d.items() if k not in _FIELDS})


def curve_key(fraction: float, method: str) -> str:
    """The per-user ``method`` key of a cold-start curve point, e.g. ``"curve:0.05:text"``."""
    return f"curve:{fraction:g}:{method}"


def combine(parts: Sequence[Results]) -> Results:
    """One :class:`Results` from runs of the same experiment with different seeds.

    Lets the seeds of a full-scale experiment run as separate processes (one per core or GPU) and
    still give one table with mean ± std and one significance test over all seeds. ``info`` gets
    ``wall_seconds`` = the longest part (the wall time when the parts run side by side; nothing
    records whether they did), ``compute_seconds`` = their sum, and ``parts`` = each part's seeds,
    device, date and wall time.

    Raises:
        ValueError: If the parts differ in anything but their seeds and how they showed progress
            (:data:`~xdtutor.experiment.NOT_RESULTS`; the dotted config keys are named), ran on different
            device kinds, library versions or encoder weights (:func:`provenance_differences`), or share a seed.
    """
    if not parts:
        raise ValueError("combine needs at least one Results")
    first = parts[0]
    ref = flatten({k: v for k, v in first.config.to_dict().items() if k != "seeds"})
    seen: list[int] = []
    for i, r in enumerate(parts):
        cfg = flatten({k: v for k, v in r.config.to_dict().items() if k != "seeds"})
        diff = sorted(k for k in set(ref) | set(cfg) if ref.get(k) != cfg.get(k) and k not in NOT_RESULTS)
        if diff:
            raise ValueError(f"part {i} ({r.config.name}) differs from part 0 in {diff}; only seeds may differ")
        for j, other in enumerate(parts[:i]):  # every pair: a part without a record passes any other
            differ = provenance_differences(r.info, other.info)
            if differ:
                raise ValueError(f"part {i} ran with " + ", ".join(f"{k} {r.info.get(k)!r}" for k in differ)
                                 + f", part {j} with " + ", ".join(f"{k} {other.info.get(k)!r}" for k in differ)
                                 + "; a table must not mix them")
        dup = sorted(set(seen) & set(r.config.seeds))
        if dup:
            raise ValueError(f"part {i} repeats seed(s) {dup}")
        seen += list(r.config.seeds)
    out = Results(replace(first.config, seeds=tuple(seen)))
    for r in parts:
        out.rows += r.rows
        out.histories.update(r.histories)
        out.cold_users += r.cold_users
        out.cold_start += r.cold_start
        out.source_runs += r.source_runs
    frames = [r.per_user.astype({"user": str}) for r in parts if not r.per_user.empty]  # loaded == in memory
    out.per_user = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.diagnostics = first.diagnostics
    walls = [float(r.info.get("wall_seconds", 0.0)) for r in parts]
    overrides = without_seed_override(first.info.get("overrides", []))
    # the encoder record stands for the table only if every part made it, alike; each part keeps its own
    shared = {k: first.info[k] for k in ENCODER_KEYS
              if all(k in r.info and r.info[k] == first.info.get(k) for r in parts)}
    out.info = {**{k: v for k, v in first.info.items() if k not in ENCODER_KEYS}, **shared,
                "overrides": overrides, "seeds": seen, "wall_seconds": max(walls), "compute_seconds": sum(walls),
                "parts": [{"seeds": list(r.config.seeds), "device": r.info.get("device"), "date": r.info.get("date"),
                           "wall_seconds": w, **{k: r.info[k] for k in ENCODER_KEYS if k in r.info}}
                          for r, w in zip(parts, walls)],
                "date": max(str(r.info.get("date", "")) for r in parts)}
    out.comparisons = out.compare_all()
    return out


#: Provenance two files (or two parts of one run) must share for their rows to be compared or combined.
SAME_MACHINE_KEYS = ("device_name", "versions")
#: The encoder's weights fingerprint and precision (:func:`xdtutor.encoders.weights_record`), recorded
#: since 2026-12-04: compared where both files record them. Older files name the encoder only; the
#: one other copy of it in use (fp16, carried to a GPU) is told apart there by the device kind.
ENCODER_KEYS = ("encoder_sha256", "encoder_precision")


def provenance_differences(a: Mapping, b: Mapping) -> list[str]:
    """What says two runs ran on different machines, libraries or encoder weights.

    Args:
        a, b: Two results' ``info`` (or a part's).

    Returns:
        The differing keys among :data:`SAME_MACHINE_KEYS`, then among :data:`ENCODER_KEYS` where both
        record them (a run without the record differs from none by it; callers compare every pair).
    """
    return ([k for k in SAME_MACHINE_KEYS if a.get(k) != b.get(k)]
            + [k for k in ENCODER_KEYS if k in a and k in b and a[k] != b[k]])


#: Config sections two files must share for their rows to be compared across files (what the methods
#: are, which ran, and how progress was shown may differ).
SHARED_SECTIONS = ("scale", "source_eval_users", "data.", "encoder.", "model.", "pretrain.", "train.", "transfer.")


def setting_differences(res_a: Results, res_b: Results, sections: tuple[str, ...] = SHARED_SECTIONS) -> list[str]:
    """The dotted config keys under ``sections`` in which two results files differ (sorted; what only
    changes how a run is shown, :data:`~xdtutor.experiment.NOT_RESULTS`, left out)."""
    fa, fb = (flatten(r.config.to_dict()) for r in (res_a, res_b))
    return sorted(k for k in set(fa) | set(fb) if k.startswith(sections) and k not in NOT_RESULTS
                  and fa.get(k) != fb.get(k))


def check_comparable(res_a: Results, res_b: Results, methods: tuple[str, str] | None = None,
                     differ: tuple[str, ...] = ()) -> list[str]:
    """Raise unless two results files are runs of one experiment whose rows may be compared across files:
    the same seeds, scale, protocol, device kind, library versions, encoder weights
    (:func:`provenance_differences`) and shared settings
    (:data:`SHARED_SECTIONS`; ``cold_start.*`` may differ). A file is always comparable with itself.

    With ``methods`` (the row ``methods[0]`` of ``res_a`` against ``methods[1]`` of ``res_b``), a shared
    setting may differ where it is a compared method's own: a key of that method's ``per_method`` (which
    replaces the shared value for that row), or a ``pretrain.*`` key where one of the two is a baseline (a
    baseline has no θ_s, so how the other file pretrained θ_s belongs to the other file's transfer).
    ``differ`` names further key prefixes the caller allows to differ — and then says so — e.g. θ_s's
    pretraining recipe when two transfers fine-tuned alike from differently pretrained θ_s.

    Returns:
        The settings that differ and were allowed, other than the methods' own ``per_method`` keys (each
        results file lists those in its header): sorted; empty for runs of one config.

    Raises:
        ValueError: Naming what differs.
    """
    if res_a is res_b:
        return []
    prefixes, own = tuple(differ), set()  # allowed key prefixes; the compared methods' own keys (exact)
    if methods is not None:
        pairs = list(zip((res_a, res_b), methods))
        own = {k for r, m in pairs for k in r.config.per_method.get(m, {})}
        prefixes += ("pretrain.",) * ("baseline" in [r.kinds().get(m) for r, m in pairs])
    diff = setting_differences(res_a, res_b)
    allowed = [k for k in diff if k in own or (prefixes and k.startswith(prefixes))]
    diff = [k for k in diff if k not in allowed]
    diff += ["seeds"] * (sorted(res_a.config.seeds) != sorted(res_b.config.seeds))  # combine keeps part order
    diff += ["protocol"] * (res_a.protocol != res_b.protocol)  # as Protocols: a newer file's defaults match
    diff += provenance_differences(res_a.info, res_b.info)
    if diff:
        raise ValueError(f"{res_a.name} and {res_b.name} differ in {diff}; their rows are not comparable")
    return [k for k in allowed if k not in own]  # a method's own settings are in its file's header


def seed_difference_across(res_a: Results, a: str, res_b: Results, b: str, metric: str = "ndcg@10",
                           level: float = 0.95, differ: tuple[str, ...] = ()) -> dict:
    """``a`` of one results file minus ``b`` of another, with a Welch interval over the seeds' test means.

    For a run that trained one strategy beside a committed run of the same experiment (e.g. ``joint``
    beside ``kitchen_to_food_converged``'s ``full_finetune``): committed files keep no per-user rows, so
    users cannot be paired and the interval covers seed variation only
    (:func:`xdtutor.stats.seed_difference`).

    Args:
        differ: Key prefixes the caller allows to differ besides the methods' own settings
            (:func:`check_comparable`).

    Returns:
        :func:`xdtutor.stats.seed_difference`'s dict (its kind of interval as ``"interval"``) with
        ``"method"``, ``"vs"``, ``"metric"``, the seed means ``"mean_a"``/``"mean_b"``, ``"files"`` and
        ``"differ"`` (the shared settings in which the two files differ, each a compared method's own or
        allowed by ``differ``).

    Raises:
        ValueError: If the files differ in their seeds, scale, protocol, device kind, library versions,
            encoder weights or any shared setting (:data:`SHARED_SECTIONS`; the dotted keys are named)
            that is neither a compared method's own nor allowed by ``differ``.
        KeyError: If a method has no rows in its file.
    """
    allowed = check_comparable(res_a, res_b, (a, b), differ)
    va, vb = res_a.test_values(a, metric), res_b.test_values(b, metric)
    found = seed_difference(va, vb, level)  # its "method" names the interval
    return {**found, "interval": found["method"], "method": a, "vs": b, "metric": metric,
            "mean_a": float(np.mean(va)), "mean_b": float(np.mean(vb)), "files": [res_a.name, res_b.name],
            "differ": allowed}


def find_results(name: str | Sequence[str], scale: str = "full", root: str | Path = "results", *,
                 having: str | None = None) -> list[tuple[Path, Results]]:
    """Every results file of experiment ``name`` (or of any of several names) at ``scale`` under
    ``root``, newest first.

    Files that are not JSON, or not a results file (no ``methods``), are skipped; with ``having``
    (``"rows"``, ``"cold_users"``, ``"cold_start"``) so are files whose that part is empty — e.g. a
    cold-start-only run of the same config has no main table.

    Returns:
        ``[(path, Results), …]`` sorted by the run's ``date``, newest first.
    """
    names = {name} if isinstance(name, str) else set(name)
    keys = {"rows": "runs"}
    found = []
    for path in sorted(Path(root).glob("**/*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(d, dict) and d.get("name") in names and d.get("scale") == scale and "methods" in d
                and (having is None or d.get(keys.get(having, having)))):
            found.append((str(d.get("date", "")), path))
    return [(p, Results.load(p)) for _, p in sorted(found, key=lambda x: x[0], reverse=True)]
