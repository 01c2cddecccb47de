"""What a search found (:class:`Search`): its trials, the best values, and the files that publish them.

Written by :func:`xdtutor.tune.search` after every trial (``tune.json``, ``tune.md`` in the search's
folder) and copied into ``results/<name>.{json,md}`` by ``xdtutor tune --publish``; read back with
:meth:`Search.load`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .tune_config import Param, TuneConfig
from .utils import atomic_write


@dataclass
class Search:
    """What a search found (:func:`search`)."""

    config: TuneConfig
    trials: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def finished(self) -> list[dict]:
        return [t for t in self.trials if t["state"] == "COMPLETE"]

    @property
    def best(self) -> dict:
        """The finished trial with the highest validation metric (the earliest on ties)."""
        if not self.finished:
            raise ValueError(f"search {self.config.name!r} has no finished trial")
        return max(self.finished, key=lambda t: (t["value"], -t["number"]))

    @property
    def per_method(self) -> dict:
        """The best values as the experiment config's ``per_method`` entry of the method."""
        return {self.config.method: dict(self.best["params"])}

    @property
    def experiment_values(self) -> dict | None:
        """The finished trial that used the experiment's own values (``None`` if none finished)."""
        return next((t for t in self.finished if t.get("experiment_values")), None)

    @property
    def sampler_seeds(self) -> list[int]:
        """The sampler's seed in each call that ran trials: ``seed`` for the first, ``seed`` + the trials
        before it for a call that continued the search (recorded per trial since 2026-12-03); a search
        restored from a published file (``--continue-from``) counts the trials that file dropped too."""
        return sorted({t["sampler_seed"] for t in self.trials if t.get("sampler_seed") is not None})

    @property
    def sampler(self) -> str:
        """The sampler and its seed; for a search continued in later calls, the seed of each call."""
        seeds = self.sampler_seeds
        if seeds in ([], [self.config.seed]):
            return f"Optuna's TPE, seed {self.config.seed}"
        before = [str(t["number"]) for t in self.finished if t.get("sampler_seed") is None]
        return (f"Optuna's TPE, seeded {', '.join(map(str, seeds))} by the calls that ran the trials "
                f"(seed {self.config.seed} + the trials before each call"
                + (f"; not recorded for trial{'s' * (len(before) > 1)} {', '.join(before)}, run before "
                   "the seed was recorded)" if before else ")"))

    def to_dict(self) -> dict:
        return {"name": self.config.name, "experiment": self.config.experiment, "method": self.config.method,
                "metric": f"valid {self.config.metric}", "sets": list(self.config.sets),
                "space": [{"key": p.key, "kind": p.kind, "low": p.low, "high": p.high, "choices": list(p.choices)}
                          for p in self.config.space],
                "budget": {"trials": self.config.trials, "timeout_minutes": self.config.timeout_minutes},
                **({"also_try": [dict(p) for p in self.config.also_try]} if self.config.also_try else {}),
                "sampler": self.sampler, "seed": self.config.seed,
                "trials": self.trials, "best": self.best if self.finished else None,
                "experiment_values": self.experiment_values, "per_method": self.per_method if self.finished else {},
                "info": self.info}

    def frame(self):
        """The trials as a table: one row per trial, a column per searched key, the validation metric,
        epochs run, best epoch and stop reason (and whether ``also_try`` asked for it, for a search with
        such points)."""
        import pandas as pd

        rows = [{"trial": t["number"], **{p.key: t["params"].get(p.key) for p in self.config.space},
                 f"valid {self.config.metric}": t["value"], "epochs": t.get("epochs"),
                 "best epoch": t.get("best_epoch"), "stop": self._stop(t),
                 "experiment's values": bool(t.get("experiment_values")),
                 **({"asked for": "asked_for" in t} if self.config.also_try else {})} for t in self.trials]
        return pd.DataFrame(rows).set_index("trial")

    @classmethod
    def load(cls, path: str | Path) -> "Search":
        """A search written by :meth:`write` or :meth:`write_to` (``tune.json`` / ``results/<name>.json``)."""
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        space = tuple(Param(p["key"], p["kind"], p["low"], p["high"], tuple(p["choices"])) for p in d["space"])
        config = TuneConfig(name=d["name"], experiment=d["experiment"], method=d["method"], space=space,
                            trials=d["budget"]["trials"], seed=d["seed"], sets=tuple(d["sets"]),
                            timeout_minutes=d["budget"]["timeout_minutes"], metric=d["metric"].removeprefix("valid "),
                            also_try=tuple(d.get("also_try", ())))
        return cls(config, d["trials"], d["info"])

    def summary(self) -> str:
        """One Markdown sentence: the keys searched, trials finished of the budget, the experiment's own
        values' validation metric, the best trial with its values and its change over the experiment's values.

        The change is on validation, one seed: what the search saw, not a test result."""
        c = self.config
        head = f"**{c.method}** over {', '.join(p.key for p in c.space)} ({len(self.finished)} of {c.trials} trials"
        head += f" or {c.timeout_minutes:g} minutes" if c.timeout_minutes else ""
        repeats = sum(self._repeats(t) is not None for t in self.finished)
        head += f"; {repeats} repeating an earlier trial's values)" if repeats else ")"
        if not self.finished:
            return head + ": no trial finished yet"
        best, base = self.best, self.experiment_values
        own = ", ".join(f"{k} = {format_value(v)}" for k, v in best["params"].items())
        text = head + ": "
        if base is not None:
            text += f"the experiment's values reach valid {c.metric} {base['value']:.4f}, "
        text += f"the best trial (number {best['number']}) {best['value']:.4f} with {own}"
        if base is not None and base["number"] == best["number"]:
            return text + " — the search kept the experiment's own values"
        gain = self.validation_gain()
        if gain is not None:
            text += f" ({gain:+.1%} on validation, one seed)"
        return text

    def validation_gain(self) -> float | None:
        """The best trial's relative change of the searched metric over the experiment's own values (on
        validation, one seed: what the search saw, not a test result); ``None`` without both trials."""
        best, base = self.best, self.experiment_values
        if best is None or base is None or not base["value"] > 0:
            return None
        return best["value"] / base["value"] - 1

    def _repeats(self, trial: dict) -> int | None:
        """The earlier finished trial whose values ``trial`` (not a rerun) repeats, if any — what a
        continued search proposed before its sampler was seeded by the trials so far."""
        same = [t["number"] for t in self.finished if t["number"] < trial["number"] and t["params"] == trial["params"]]
        return same[0] if same and trial.get("rerun_of") is None else None

    def _stop(self, trial: dict) -> str:
        """Why a trial ended: its stop reason (a training that never beat its first epoch said so: its
        settings failed from the start rather than converged), the trial whose values it repeats, or that
        it was interrupted (and which trial ran it again)."""
        if trial.get("stop_reason"):
            repeats = self._repeats(trial)
            first = trial.get("best_epoch") == 1 and (trial.get("epochs") or 0) > 1
            return (trial["stop_reason"] + ("; never better than after its first epoch" if first else "")
                    + (f"; repeats trial {repeats}'s values" if repeats is not None else ""))
        if trial["state"] == "RUNNING":
            return "running"
        again = [t["number"] for t in self.trials if t.get("rerun_of") == trial["number"]]
        return "interrupted" + (f"; run again as trial {again[0]}" if again else "")

    def _restored(self) -> str:
        """Which trials a search continued from a published file (``--continue-from``), where they ran."""
        r = self.info.get("restored")
        done = [t for t in self.trials if t.get("restored_from") is not None]
        if not r or not done:
            return ""
        groups: dict[str, list[str]] = {}
        for t in done:
            groups.setdefault(t.get("ran_on") or "an unrecorded machine", []).append(str(t["number"]))
        text = f" Restored from `{r['file']}`: " + "; ".join(
            f"trial{'s' * (len(n) > 1)} {', '.join(n)} ran on {where}" for where, n in groups.items())
        renumbered = [f"{t['number']} was {t['restored_from']}" for t in done if t["number"] != t["restored_from"]]
        text += f" (renumbered: {', '.join(renumbered)})" if renumbered else ""
        return text + ("; θ_s was pretrained again on this machine, same seed" if r.get("theta_s_again") else "") + "."

    def markdown(self) -> str:
        keys = [p.key for p in self.config.space]
        lines = [f"# Search `{self.config.name}`: {self.config.method}, valid {self.config.metric}", "",
                 f"Experiment `{self.config.experiment}` {' '.join(self.config.sets)}; "
                 f"{len(self.finished)} of {self.config.trials} trials finished; sampler {self.sampler}."
                 + self._restored(),
                 "", "| trial | " + " | ".join(keys) + f" | valid {self.config.metric} | epochs (best) | stop |",
                 "|---" * (len(keys) + 4) + "|"]
        for t in self.trials:
            value = f"{t['value']:.4f}" if t["value"] is not None else "—"
            mark = (" (experiment's values)" if t.get("experiment_values")
                    else " (also_try)" if "asked_for" in t else "")
            epochs = f"{t['epochs']} ({t.get('best_epoch')})" if t.get("epochs") is not None else "—"
            lines.append(f"| {t['number']}{mark} | " + " | ".join(format_value(t["params"].get(k)) for k in keys)
                         + f" | {value} | {epochs} | {self._stop(t)} |")
        if self.finished:
            lines += ["", f"Best: trial {self.best['number']}; in the experiment config:", "", "```yaml",
                      yaml.safe_dump({"per_method": self.per_method}, default_flow_style=None).strip(), "```"]
        return "\n".join(lines) + "\n"

    def write(self, out: str | Path) -> Path:
        """``tune.json`` and ``tune.md`` in the search's folder ``out``."""
        return self._write(Path(out), "tune")

    def write_to(self, folder: str | Path) -> Path:
        """``<name>.json`` and ``<name>.md`` in ``folder`` (e.g. the committed ``results/``)."""
        return self._write(Path(folder), self.config.name)

    def _write(self, folder: Path, stem: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / f"{stem}.json", "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)
        with atomic_write(folder / f"{stem}.md", "w") as fh:
            fh.write(self.markdown())
        return folder / f"{stem}.json"


def format_value(v: Any) -> str:
    """A searched value as the tables print it (floats to three significant digits)."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


#: Experiments (config names) whose searches are read beside their own run (another device, another
#: question), not in their dataset's line of searches (README, FAQ, chapter 7).
READ_APART = ("scientific_width",)


def committed_searches(folder: str | Path, prefix: str, experiment: str | None = None) -> list[Search]:
    """The published searches ``<folder>/tune_<prefix>_*.json``, in file-name order: those of the
    experiment named ``experiment`` (its config's ``name``, as the search recorded it), or, with ``None``,
    those of every experiment but the ones :data:`READ_APART`."""
    found = [Search.load(f) for f in sorted(Path(folder).glob(f"tune_{prefix}_*.json"))]
    name = lambda s: s.info.get("experiment_config", {}).get("name")  # noqa: E731
    return [s for s in found if (name(s) == experiment if experiment else name(s) not in READ_APART)]


__all__ = ["READ_APART", "Search", "committed_searches", "format_value"]
