"""The student build (``scripts/student_notebooks.py``, ``make student``): notebooks without solutions,
and an answer key with them.

For every chapter the student notebook must hold every exercise statement of the source and nothing of
any solution — no marker, no solution code, no solution text — with no outputs, and be a valid notebook
that runs without the solutions; the answer key must have one entry per exercise with its label, its
statement and its solution. The solutions are found here independently of the script (by searching the
Markdown source), and a test checks that this search does find the solutions in the unprocessed
chapters, so a script that stopped removing them would fail. A synthetic chapter covers the edge cases
of the markers: a marker sharing a cell with text, nested and colon fences, text-only solutions, a
marker shown inside a code block, and markers out of order.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from pyflakes import messages
from pyflakes.checker import Checker

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "student_notebooks.py"
SOURCES = sorted((ROOT / "book" / "chapters").glob("[0-9][0-9]_*.md"))
IDS = [p.stem for p in SOURCES]
MARKERS = ("solution-start", "solution-end", "{solution}")


def _load_script():
    spec = importlib.util.spec_from_file_location("student_notebooks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


sn = _load_script()


# --- what the source says, found without the script's parser ---------------------------------------


def source_exercises(path: Path) -> list[dict]:
    """Each exercise of a chapter in order: label, first statement line, difficulty (or None)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"^(`{3,}|:{3,})\{exercise\}[^\n]*\n(.*?)^\1\s*$", text, re.S | re.M):
        body = m.group(2)
        label = re.search(r"^:label:\s*(\S+)", body, re.M).group(1)
        difficulty = re.search(r"^Difficulty:\s*(.+?)\s*$", body, re.M)
        lines = [line for line in body.splitlines() if line.strip() and not line.startswith(":")
                 and not line.startswith("Difficulty:")]
        out.append({"label": label, "first_line": lines[0].strip(),
                    "difficulty": difficulty.group(1) if difficulty else None})
    return out


def source_solutions(path: Path) -> dict[str, dict[str, list[str]]]:
    """label -> the code cells and text lines of its solution (between the markers, or a {solution} block)."""
    text = path.read_text(encoding="utf-8")
    out: dict[str, dict[str, list[str]]] = {}
    span = re.compile(r"^(`{3,}|:{3,})\{solution-start\}\s*(\S+).*?^(`{3,}|:{3,})\{solution-end\}", re.S | re.M)
    for m in span.finditer(text):
        inside = m.group(0)
        code = re.findall(r"^```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*\n?(.*?)^```\s*$", inside, re.S | re.M)
        prose = re.sub(r"^```\{code-cell\}.*?^```\s*$", "", inside, flags=re.S | re.M)
        lines = [line.strip() for line in prose.splitlines()[1:]
                 if len(line.strip()) > 30 and not line.lstrip().startswith((":", "`"))]
        out[m.group(2)] = {"code": [c.strip() for c in code if c.strip()], "text": lines}
    for m in re.finditer(r"^(`{3,})\{solution\}\s*(\S+)[^\n]*\n(.*?)^\1\s*$", text, re.S | re.M):
        lines = [line.strip() for line in m.group(3).splitlines() if len(line.strip()) > 30
                 and not line.startswith(":")]
        out[m.group(2)] = {"code": [], "text": lines}
    return out


def leaks(nb, path: Path) -> list[str]:
    """Everything of a solution that is still in ``nb``: markers, solution code cells, solution text."""
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    prose = "\n".join(c.source for c in nb.cells if c.cell_type != "code")
    found = [f"marker {m!r}" for m in MARKERS if m in code + prose]
    for label, sol in source_solutions(path).items():
        found += [f"{label}: solution code" for snippet in sol["code"] if snippet in code]
        found += [f"{label}: solution text {line[:40]!r}" for line in sol["text"] if line in prose]
    return found


def undefined_names(nb) -> list[str]:
    sources = ["\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
               for c in nb.cells if c.cell_type == "code"]
    checker = Checker(ast.parse("\n\n".join(sources)))
    return sorted({m.message_args[0] for m in checker.messages if isinstance(m, messages.UndefinedName)}
                  - {"display", "get_ipython"} - set(dir(builtins)))


# --- the book's chapters ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("course")
    found = sn.build(SOURCES, out)
    return out, found


def _exercise_cells(nb):
    return [c for c in nb.cells if c.cell_type == "markdown" and "exercise" in c.metadata.get("xdtutor", {})]


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_the_leak_check_finds_the_solutions_of_the_unprocessed_chapter(source):
    """The check below is not vacuous: on the chapter itself it finds markers, code and text."""
    exercises = source_exercises(source)
    assert exercises, f"{source.name}: no exercise found"
    solutions = source_solutions(source)
    assert set(solutions) == {e["label"] for e in exercises}, f"{source.name}: an exercise without a solution"
    as_is = jupytext.read(source)
    found = leaks(as_is, source)
    assert any(f.startswith("marker") for f in found)
    for label, sol in solutions.items():
        if sol["code"]:
            assert f"{label}: solution code" in found, label
        if sol["text"]:
            assert any(f.startswith(f"{label}: solution text") for f in found), label


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_student_notebook_has_the_exercises_and_no_solution(built, source):
    out, _ = built
    path = out / "student" / f"{source.stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "jupytext" not in nb.metadata, "a student copy must not be paired with book/chapters"
    assert leaks(nb, source) == []

    exercises = source_exercises(source)
    cells = _exercise_cells(nb)
    assert [c.metadata["xdtutor"]["exercise"] for c in cells] == [e["label"] for e in exercises]
    for cell, ex in zip(cells, exercises):
        assert f"`{ex['label']}`" in cell.source and ex["first_line"] in cell.source, ex["label"]
        if ex["difficulty"]:
            assert f"Difficulty: {ex['difficulty']}" in cell.source.splitlines()[0], ex["label"]
        else:
            assert "Difficulty" not in cell.source, ex["label"]

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs left"
    assert 'find_spec("xdtutor")' in code[0].source, "the install cell is kept (students on Colab need it)"
    assert "parameters" in code[1].metadata.get("tags", []), "papermill's parameters cell is kept"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_student_notebook_runs_without_the_solutions(built, source):
    """No cell the students keep uses a name that only a solution defined."""
    out, _ = built
    assert undefined_names(nbformat.read(out / "student" / f"{source.stem}.ipynb", as_version=4)) == []


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_answer_key_has_one_entry_per_exercise_with_its_solution(built, source):
    out, _ = built
    key = (out / "answer_key" / f"{source.stem}.md").read_text(encoding="utf-8")
    exercises = source_exercises(source)
    assert re.findall(r"^## (\S+)", key, re.M) == [e["label"] for e in exercises]
    entries = re.split(r"^## ", key, flags=re.M)[1:]
    solutions = source_solutions(source)
    for entry, ex in zip(entries, exercises):
        label = ex["label"]
        assert ex["first_line"].split("{glue")[0] in entry, f"{label}: statement missing"   # glue: filled in
        assert f"Difficulty: {ex['difficulty'] or 'not given'}" in entry, label
        for snippet in solutions[label]["code"]:
            assert f"```python\n{snippet}\n```" in entry, f"{label}: solution code missing"
        for line in solutions[label]["text"]:
            if "{glue" not in line:              # glued values are filled in from the committed run
                assert line in entry, f"{label}: solution text missing: {line[:40]!r}"
    for m in MARKERS:
        assert m not in key


def test_answer_key_index_lists_every_exercise(built):
    out, found = built
    index = (out / "answer_key" / "index.md").read_text(encoding="utf-8")
    for source in SOURCES:
        for ex in source_exercises(source):
            assert f"`{ex['label']}`" in index, ex["label"]
    assert sum(len(v) for v in found.values()) == sum(len(source_exercises(s)) for s in SOURCES)


def test_the_build_is_reproducible(tmp_path):
    """The same chapter gives the same files (no random cell ids)."""
    a, b = tmp_path / "a", tmp_path / "b"
    sn.build(SOURCES[:1], a)
    sn.build(SOURCES[:1], b)
    for rel in (f"student/{SOURCES[0].stem}.ipynb", f"answer_key/{SOURCES[0].stem}.md"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_answer_key_fills_in_glued_values():
    values = {"n": {"text/plain": "1234"}, "x": {"text/plain": "0.123456"}, "m": {"text/markdown": "**bold**"}}
    text = "{glue:text}`n:,d` users, {glue:text}`x:.2f`, {glue:md}`m`, {glue:text}`missing:.1f`"
    assert sn.fill_glue(text, values) == "1,234 users, 0.12, **bold**, {glue:text}`missing:.1f`"


# --- a synthetic chapter with the markers' edge cases ---------------------------------------------------

FIXTURE = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Fixture chapter

Intro text.

```{code-cell} ipython3
x = 1
```

## Exercises

```{exercise}
:label: ex-fx-code
Difficulty: ★☆☆

Add one to `x`.
```
```{solution-start} ex-fx-code
:class: dropdown
```

```{code-cell} ipython3
y = x + 1  # SOLUTION-CODE-1
```

Text between two solution cells. SOLUTION-TEXT-1

```{code-cell} ipython3
assert y == 2  # SOLUTION-CODE-2
```

**Answer.** Two. SOLUTION-TEXT-2

```{solution-end}
```

Text after the solution, kept. KEPT-1

````{exercise}
:label: ex-fx-nested
Explain this code:

```python
print("not a fence end")
```

What does it print?
````
```{solution} ex-fx-nested
:class: dropdown
It prints a sentence. SOLUTION-TEXT-3
```

:::{exercise}
:label: ex-fx-colon
Difficulty: ★★★
A colon-fenced exercise.
:::
:::{solution-start} ex-fx-colon
:class: dropdown
:::

```{code-cell} ipython3
z = 3  # SOLUTION-CODE-3
```

:::{solution-end}
:::
How the markers are written, kept as it is: KEPT-2

````markdown
```{solution-start} ex-fx-code
```
````

```{code-cell} ipython3
print("last cell", x)  # KEPT-3
```
'''


def _fixture(tmp_path, text=FIXTURE) -> Path:
    path = tmp_path / "99_fixture.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_fixture_student_notebook(tmp_path):
    path = _fixture(tmp_path)
    nb, exercises = sn.student_notebook(jupytext.read(path), "fixture")
    nbformat.validate(nb)
    labels = [e.label for e in exercises]
    assert labels == ["ex-fx-code", "ex-fx-nested", "ex-fx-colon"]
    assert [e.difficulty for e in exercises] == ["★☆☆", None, "★★★"]
    everything = "\n".join(c.source for c in nb.cells)
    for secret in ("SOLUTION-CODE-1", "SOLUTION-CODE-2", "SOLUTION-CODE-3", "SOLUTION-TEXT-1", "SOLUTION-TEXT-2",
                   "SOLUTION-TEXT-3", ":class: dropdown"):
        assert secret not in everything, secret
    for kept in ("Intro text.", "x = 1", "Text after the solution, kept. KEPT-1", 'print("not a fence end")',
                 "What does it print?", "KEPT-2", "KEPT-3"):
        assert kept in everything, kept
    # the marker shown inside a code block is text, not a marker
    assert "````markdown\n```{solution-start} ex-fx-code\n```\n````" in everything

    kinds = [(c.cell_type, c.metadata.get("xdtutor", {})) for c in nb.cells]
    order = [meta.get("exercise") or f"answer:{meta['answer']}" for _, meta in kinds if {"exercise", "answer"} & set(meta)]
    assert order == ["ex-fx-code", "answer:ex-fx-code", "ex-fx-nested", "answer:ex-fx-nested",
                     "ex-fx-colon", "answer:ex-fx-colon"]
    answer_cells = {meta["answer"]: kind for kind, meta in kinds if "answer" in meta}
    assert answer_cells == {"ex-fx-code": "code", "ex-fx-nested": "markdown", "ex-fx-colon": "code"}

    def where(pred) -> int:
        return next(i for i, c in enumerate(nb.cells) if pred(c))

    # the text after a solution-end in the same cell stays where it was: after the answer cell, before the next exercise
    kept1 = where(lambda c: "KEPT-1" in c.source)
    assert where(lambda c: c.metadata.get("xdtutor", {}).get("answer") == "ex-fx-code") < kept1
    assert kept1 < where(lambda c: c.metadata.get("xdtutor", {}).get("exercise") == "ex-fx-nested")
    first = _exercise_cells(nb)[0].source
    assert first.splitlines()[0] == "**Exercise `ex-fx-code`** · Difficulty: ★☆☆"
    assert "Difficulty" not in first.split("\n", 1)[1]


def test_fixture_answer_key(tmp_path):
    path = _fixture(tmp_path)
    sn.build([path], tmp_path / "out", notebooks=tmp_path)
    key = (tmp_path / "out" / "answer_key" / "99_fixture.md").read_text(encoding="utf-8")
    assert re.findall(r"^## (\S+)", key, re.M) == ["ex-fx-code", "ex-fx-nested", "ex-fx-colon"]
    order = [key.index(s) for s in ("Add one to `x`.", "SOLUTION-CODE-1", "SOLUTION-TEXT-1", "SOLUTION-CODE-2",
                                     "SOLUTION-TEXT-2", "## ex-fx-nested", 'print("not a fence end")',
                                     "SOLUTION-TEXT-3", "## ex-fx-colon", "SOLUTION-CODE-3")]
    assert order == sorted(order)
    assert "```python\ny = x + 1  # SOLUTION-CODE-1\n```" in key
    assert "Difficulty: ★☆☆" in key and "Difficulty: not given" in key and "Difficulty: ★★★" in key
    assert "KEPT-1" not in key and "KEPT-3" not in key
    student = nbformat.read(tmp_path / "out" / "student" / "99_fixture.ipynb", as_version=4)
    assert "SOLUTION" not in "\n".join(c.source for c in student.cells)


@pytest.mark.parametrize("broken, message", [
    (FIXTURE.replace("**Answer.** Two. SOLUTION-TEXT-2\n\n```{solution-end}\n```\n", "**Answer.** Two.\n"),
     "inside the solution"),                                                       # a missing end, then a new exercise
    (FIXTURE.replace(":::{solution-end}\n:::\n", ""), "has no solution-end"),      # the last solution never ends
    (FIXTURE.replace("```{solution-start} ex-fx-code\n:class: dropdown\n```\n", ""),
     "solution-end without a solution-start"),
    (FIXTURE.replace("{solution-start} ex-fx-code\n:class", "{solution-start} ex-fx-typo\n:class"),
     "not an exercise above it"),
    (FIXTURE.replace("```{solution} ex-fx-nested\n:class: dropdown\nIt prints a sentence. SOLUTION-TEXT-3\n```\n",
                     "```{solution} ex-fx-nested\n:class: dropdown\nIt prints a sentence. SOLUTION-TEXT-3\n"),
     "solution-end without a solution-start"),   # the unclosed block runs on to the next fence
], ids=["missing-end-then-exercise", "missing-end-at-the-end", "end-without-start", "unknown-label",
        "unclosed-solution-block"])
def test_fixture_markers_out_of_order_stop_the_build(tmp_path, broken, message):
    assert broken != FIXTURE
    with pytest.raises(sn.SolutionMarkerError, match=message):
        sn.student_notebook(jupytext.read(_fixture(tmp_path, broken)), "fixture")


def test_markdown_splitting():
    blocks = sn.split_markdown("Text before.\n````{exercise}\n:label: ex-a\nDifficulty: ★☆☆\n```python\nx\n```\n````\n"
                               "```{solution-end}\n```\nText after.\n```python\n```{solution-start} ex-a\n```\n")
    assert [b.name for b in blocks] == [None, "exercise", "solution-end", None]
    assert blocks[1].options == {"label": "ex-a"} and blocks[1].body == "Difficulty: ★☆☆\n```python\nx\n```"
    assert blocks[3].raw.startswith("Text after.") and "{solution-start}" in blocks[3].raw   # inside a code block: text
    assert "".join(b.raw for b in blocks).startswith("Text before.")
    with pytest.raises(sn.SolutionMarkerError, match="never closed"):
        sn.split_markdown("```{solution-start} ex-a\n:class: dropdown\n", "here")


def test_command_line(tmp_path, capsys):
    assert sn.main([str(_fixture(tmp_path)), "--out", str(tmp_path / "out")]) == 0
    assert "3 exercises; no Difficulty: line: ex-fx-nested" in capsys.readouterr().out
    bad = _fixture(tmp_path, FIXTURE.replace(":::{solution-end}\n:::\n", ""))
    assert sn.main([str(bad), "--out", str(tmp_path / "out")]) == 1
    assert "has no solution-end" in capsys.readouterr().err
