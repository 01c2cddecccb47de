"""The ``xdtutor`` command line.

::

    xdtutor data list
    xdtutor data stats NAME [--json] [--data-dir D] [--target T] [--subsample F --seed S]
                                                                   # checks the registry's reference values
    xdtutor data stats --path FOLDER [--target T] [--json]         # bring-your-own-data folder
    xdtutor run CONFIG.yaml [--set key=value ...] [--out DIR] [--overwrite]   # the pipeline -> a run folder
                                                                   # (a rerun resumes an unfinished one)
    xdtutor combine RUN_DIR RUN_DIR ... --out DIR                  # seeds run apart -> one run folder
    xdtutor publish RUN_DIR [--to results]                         # -> results/<name>.{json,md} + figures
    xdtutor tune SEARCH.yaml [--out DIR] [--continue-from JSON] [--publish results]
                                                                   # a method's settings, chosen on validation
    xdtutor data export-recbole NAME --out DIR                     # RecBole atomic files (NAME.inter, .item)

``--debug`` (before or after the command) shows the traceback behind an error and logs every epoch.

Errors in the input print one message (file, line, field) and exit non-zero; no traceback.
The data commands import only the data layer, and the run commands import the pipeline (and torch)
inside their handlers, so `xdtutor data list` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Iterator, Sequence

from . import __version__
from .checkpoints import CheckpointError
from .config import ConfigError
from .data.build import load_dataset
from .data.errors import DataError
from .data.generic import load_generic
from .data.preprocess import check_reference, dataset_stats
from .data.registry import REGISTRY, get_spec


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6f}" if v < 1 else f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _print_stats(stats: dict) -> None:
    print(f"dataset: {stats['dataset']}  (target {stats['target']}; sources {', '.join(stats['sources']) or '-'})")
    for name, st in stats["domains"].items():
        q = st["length_quantiles"]
        print(f"  {name}: users {_fmt(st['users'])}, items {_fmt(st['items'])} "
              f"({_fmt(st['items_used'])} used), interactions {_fmt(st['interactions'])}, "
              f"density {st['density']:.6f}")
        print(f"    sequence length: mean {st['length_mean']:.2f}, min {q['min']:g}, p25 {q['p25']:g}, "
              f"median {q['p50']:g}, p75 {q['p75']:g}, p90 {q['p90']:g}, max {q['max']:g}")
    print(f"  overlapping users: {_fmt(stats['overlap_users'])}; overlapping items (same raw id): "
          f"{_fmt(stats['overlap_items'])}")
    sp = stats["split"]
    print(f"  target split: {_fmt(sp['valid_users'])} users with valid/test, "
          f"{_fmt(sp['train_only_users'])} train-only users, {_fmt(sp['train_interactions'])} train interactions")
    print(f"  {stats['protocol']}")


def _data_list(args) -> int:
    for name, spec in sorted(REGISTRY.items()):
        print(f"{name:14s} {spec.description}")
        print(f"{'':14s} origin {spec.repo}@{spec.commit[:7]}, folder {spec.folder}/, domains "
              f"{', '.join(spec.domains)}")
    return 0


def _data_export_recbole(args) -> int:
    from .data.recbole import write_atomic

    if (args.name is None) == (args.path is None):
        print("error: give a dataset NAME or --path FOLDER (one of them)", file=sys.stderr)
        return 2
    ds = load_generic(args.path) if args.path is not None else load_dataset(args.name, data_dir=args.data_dir)
    for domain in (ds.target.domain, *ds.sources):
        inter, item = write_atomic(domain, args.out)
        print(f"{domain.name}: {domain.n_users:,} users, {domain.n_items:,} items -> {inter}, {item}")
    return 0


def _data_stats(args) -> int:
    if (args.name is None) == (args.path is None):
        print("error: give a dataset NAME or --path FOLDER (one of them)", file=sys.stderr)
        return 2
    if args.path is not None:
        ds = load_generic(args.path, target=args.target, subsample=args.subsample, seed=args.seed)
        reference = {}
    else:
        spec = get_spec(args.name)
        ds = load_dataset(args.name, data_dir=args.data_dir, target=args.target, subsample=args.subsample,
                          seed=args.seed)
        full = args.target in (None, spec.domains[0]) and args.subsample == 1.0
        reference = dict(spec.reference) if full else {}
    stats = dataset_stats(ds)
    problems = check_reference(stats, reference)
    stats["reference"] = {"checked": sorted(reference), "differences": problems}
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        _print_stats(stats)
        if reference:
            print(f"  reference check: {'OK' if not problems else 'FAILED'} "
                  f"({len(reference) - len(problems)}/{len(reference)} values match)")
    for p in problems:
        print(f"reference mismatch: {p}", file=sys.stderr)
    return 1 if problems else 0


def _run(args) -> int:
    from . import distributed
    from .experiment import load_config
    from .pipeline import LOG, run_experiment
    from .report import text_table, write_run
    from .run_folder import RunFolder

    config = load_config(args.config, args.set or [])
    out = Path(args.out) if args.out else Path("runs") / f"{config.name}-{config.scale}"
    started = distributed.init_from_env(config.device)  # under torchrun: join the job's processes
    try:
        # rank 0 checks and prepares the folder before anything trains; the others learn the outcome
        problem = None
        if distributed.is_main():
            try:
                folder = RunFolder(out, config.to_dict(), overwrite=args.overwrite)
            except ConfigError as exc:
                problem = str(exc)
        problem = distributed.broadcast(problem)
        if problem is not None:
            raise ConfigError(problem)
        if not distributed.is_main():
            folder = RunFolder(out, config.to_dict(), writer=False)
        results = run_experiment(config, folder=folder, log=LOG.info if distributed.is_main() else None)
        if distributed.is_main():
            results.info.update({"config_file": str(args.config), "overrides": list(args.set or []),
                                 "processes": distributed.info()[2]})
            write_run(results, out)
            print(text_table(results))
            print(f"wrote {out}/ (results.json, per_user.csv, report.md, figures, models/; wall time "
                  f"{results.info['wall_seconds']:.0f} s)")
    finally:
        if started:
            distributed.shutdown()
    return 0


def _combine(args) -> int:
    from .report import text_table, write_run
    from .results import Results, combine

    results = combine([Results.load(d) for d in args.runs])
    write_run(results, args.out)
    print(text_table(results))
    print(f"wrote {args.out}/ ({len(args.runs)} parts, seeds {list(results.config.seeds)})")
    return 0


def _publish(args) -> int:
    from .report import publish
    from .results import Results

    written = publish(Results.load(args.run), args.to)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _tune(args) -> int:
    from .pipeline import LOG
    from .tune import load_tune_config, search

    tune = load_tune_config(args.search)
    out = Path(args.out) if args.out else Path("runs") / f"tune-{tune.name}"
    found = search(tune, out, log=LOG.info, continue_from=args.continue_from)
    print(found.markdown())
    written = [out / "tune.json"]
    if args.publish:
        written.append(found.write_to(args.publish))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xdtutor", description="Cross-domain transfer for sequential "
                                "recommendation with pretrained language models.")
    p.add_argument("--version", action="version", version=f"xdtutor {__version__}")
    debug_help = "show the traceback behind an error, and one log line per training epoch"
    p.add_argument("--debug", action="store_true", help=debug_help)
    # also after the command (`xdtutor run cfg.yaml --debug`, as the error hint suggests); SUPPRESS: a
    # command without it keeps what the top-level flag said
    anywhere = argparse.ArgumentParser(add_help=False)
    anywhere.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = p.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", parents=[anywhere], help="list datasets, print and check their statistics")
    dsub = data.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="registered datasets", parents=[anywhere]).set_defaults(func=_data_list)
    st = dsub.add_parser("stats", help="statistics of a dataset, checked against the registry", parents=[anywhere])
    st.add_argument("name", nargs="?", help="registered dataset (see `xdtutor data list`)")
    st.add_argument("--path", help="a bring-your-own-data folder (items.csv, interactions.csv, or RecBole "
                    "atomic files NAME.inter + NAME.item per domain)")
    st.add_argument("--data-dir", help="data root (default: $XDTUTOR_DATA_DIR, then the download cache)")
    st.add_argument("--target", help="target domain (e.g. kitchen for food_kitchen)")
    st.add_argument("--subsample", type=float, default=1.0,
                    help="fraction of users kept, seeded (reference values are only checked at 1.0)")
    st.add_argument("--seed", type=int, default=0, help="seed of the user subsample")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_data_stats)
    ex = dsub.add_parser("export-recbole", parents=[anywhere], help="write a dataset's domains as RecBole atomic files "
                         "(NAME.inter, NAME.item per domain)")
    ex.add_argument("name", nargs="?", help="registered dataset (see `xdtutor data list`)")
    ex.add_argument("--path", help="a bring-your-own-data folder instead")
    ex.add_argument("--data-dir", help="data root (default: $XDTUTOR_DATA_DIR, then the download cache)")
    ex.add_argument("--out", required=True, help="folder for the atomic files")
    ex.set_defaults(func=_data_export_recbole)
    run = sub.add_parser("run", parents=[anywhere], help="run an experiment from a YAML config")
    run.add_argument("config", help="YAML config file")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    run.add_argument("--out", help="output folder (default runs/<name>-<scale>); an unfinished run there is resumed")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a finished run (or a run of another config) in the output folder")
    run.set_defaults(func=_run)
    comb = sub.add_parser("combine", parents=[anywhere],
                          help="combine run folders of the same experiment with different seeds")
    comb.add_argument("runs", nargs="+", metavar="RUN_DIR")
    comb.add_argument("--out", required=True, help="output folder")
    comb.set_defaults(func=_combine)
    pub = sub.add_parser("publish", parents=[anywhere],
                         help="write a run's results/<name>.json and .md (hand-written notes kept)")
    pub.add_argument("run", metavar="RUN_DIR")
    pub.add_argument("--to", default="results", help="folder of committed results (default: results)")
    pub.set_defaults(func=_publish)
    tune = sub.add_parser("tune", parents=[anywhere],
                          help="choose a method's hyper-parameters on validation (Optuna search)")
    tune.add_argument("search", help="YAML file of the search (experiment, method, space, trials)")
    tune.add_argument("--out", help="folder of the search (default runs/tune-<name>); a stopped search there continues")
    tune.add_argument("--continue-from", metavar="JSON",
                      help="a published search (e.g. results/<name>.json) whose finished trials start an empty "
                           "--out: the search continues on a machine without its study.db")
    tune.add_argument("--publish", metavar="FOLDER",
                      help="also write <name>.json and <name>.md there (e.g. results)")
    tune.set_defaults(func=_tune)
    return p


@contextlib.contextmanager
def _command_logging(debug: bool) -> Iterator[None]:
    """Log records (message only) on stderr while a command runs, every logger's from DEBUG with
    ``--debug``; the root logger as it was afterwards. ``main`` also runs in-process (tests, notebooks),
    where a handler left behind would keep writing to that call's stderr — closed once a test's capture
    ends, so every later debug record (markdown-it logs one per block it parses) printed a traceback."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.handlers = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        yield
    finally:
        root.handlers = handlers
        root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xdtutor`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with _command_logging(args.debug):
            return int(args.func(args))
    except (DataError, ConfigError, ValueError, OSError, CheckpointError) as exc:
        if args.debug:
            raise
        print(f"error: {exc} (--debug shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
