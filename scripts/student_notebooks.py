"""Student notebooks without solutions, and an answer key for instructors.

Usage (from the repository root; ``make student`` runs the first line)::

    python scripts/student_notebooks.py                              # every chapter -> build/
    python scripts/student_notebooks.py book/chapters/06_code.md     # one chapter
    python scripts/student_notebooks.py --out /tmp/course            # another output folder

For each chapter ``book/chapters/NN_name.md`` (its one source, read with jupytext) it writes

* ``build/student/NN_name.ipynb``: the chapter with every solution removed — the cells from a
  ```` ```{solution-start} <label> ```` marker through the matching ```` ```{solution-end} ```` and
  every text-only ```` ```{solution} <label> ```` block — and no outputs. Each exercise statement
  is kept, as a Markdown cell of its own that shows its label and, when the statement has a line
  starting with ``Difficulty:``, its difficulty; a code exercise is followed by an empty code cell
  for the answer, a text exercise by an empty answer cell. The chapter's jupytext pairing is dropped
  (a student's copy must never write back into ``book/chapters``);
* ``build/answer_key/NN_name.md``: each exercise statement followed by its solution — the text as
  written, code cells as fenced ``python`` blocks with the output of the committed CI-scale run
  (``notebooks/NN_name.ipynb``), and the chapter's ``{glue:…}`` values filled in from that run —
  plus ``build/answer_key/index.md``, a table of every exercise with its difficulty.

``build/`` is git-ignored. Markers are found by parsing the Markdown cells' fenced directives
(backtick, tilde or colon fences, nested fences, a marker sharing a cell with text), not by
searching for strings; a marker out of order — a solution that is never closed, an end without a
start, a solution for an unknown exercise — stops the script with the file and label, rather than
let a solution through to the students.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "book" / "chapters"
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build"

SOLUTION_DIRECTIVES = ("solution-start", "solution-end", "solution")
DIFFICULTY = re.compile(r"^\s*Difficulty:\s*(?P<value>.+?)\s*$", re.M)
FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[\w:.+-]+)\}\s*(?P<argument>.*)$")
GLUE_ROLE = re.compile(r"\{glue(?::(?P<kind>\w+))?\}`(?P<key>[^`:]+)(?::(?P<fmt>[^`]*))?`")
OUTPUT_LINES = 40  # longest output shown in the answer key


class SolutionMarkerError(ValueError):
    """The solution markers of a chapter are out of order (the student build would leak or lose text)."""


@dataclass
class Block:
    """A piece of a Markdown cell: plain text, or one fenced directive with its fences."""

    raw: str
    name: str | None = None          # directive name (``exercise``, ``solution-start`` …); None for text
    argument: str = ""
    options: dict = field(default_factory=dict)
    body: str = ""                   # the directive's content without its option lines


@dataclass
class Exercise:
    label: str
    title: str
    statement: str                   # the exercise body without its options and its Difficulty line
    difficulty: str | None
    solution: list[tuple[str, str, int | None]] = field(default_factory=list)  # (kind, text, cell index)
    solved: bool = False

    @property
    def has_code(self) -> bool:
        return any(kind == "code" for kind, _, _ in self.solution)


# --------------------------------------------------------------------------------------------------
# Markdown: fenced directives


def _parse_options(lines: list[str]) -> tuple[dict, list[str]]:
    """A directive's ``:key: value`` lines (or a ``---`` YAML block) at the top of its content."""
    options: dict = {}
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            loaded = yaml.safe_load("\n".join(lines[1:end])) or {}
            if isinstance(loaded, dict):
                return {str(k): str(v) for k, v in loaded.items()}, lines[end + 1:]
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*:([\w-]+):\s*(.*)$", lines[i])
        if not m:
            break
        options[m.group(1)] = m.group(2).strip()
        i += 1
    return options, lines[i:]


def split_markdown(text: str, where: str = "") -> list[Block]:
    """Split Markdown into text blocks and top-level fenced directives (CommonMark fence rules).

    A fence closes on a line of at least as many of the same characters and nothing else; fences
    inside a block (a ```` ```python ```` in a ````` ````{exercise} `````) belong to it, and a
    directive written inside a plain code block is text. A directive fence that is never closed is
    an error (in a chapter it would swallow the rest of the cell).
    """
    lines = text.splitlines(keepends=True)
    blocks: list[Block] = []
    buffer: list[str] = []
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i].rstrip("\n"))
        if not m or (m.group("fence")[0] == "`" and "`" in m.group("info")):
            buffer.append(lines[i])
            i += 1
            continue
        fence = m.group("fence")
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j].rstrip("\n"))), None)
        directive = DIRECTIVE_INFO.match(m.group("info").strip())
        if directive is None:                       # a plain code block (or a colon fence without a name): text
            stop = len(lines) if end is None else end + 1
            buffer.extend(lines[i:stop])
            i = stop
            continue
        if end is None:
            raise SolutionMarkerError(f"{where}: the ```{{{directive.group('name')}}} fence opened by "
                                      f"{lines[i].strip()!r} is never closed")
        if buffer:
            blocks.append(Block("".join(buffer)))
            buffer = []
        content = [line.rstrip("\n") for line in lines[i + 1:end]]
        options, body = _parse_options(content)
        blocks.append(Block("".join(lines[i:end + 1]), directive.group("name"), directive.group("argument").strip(),
                            options, "\n".join(body).strip("\n")))
        i = end + 1
    if buffer:
        blocks.append(Block("".join(buffer)))
    return blocks


def _join(pieces: list[str]) -> str:
    text = "".join(pieces).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


# --------------------------------------------------------------------------------------------------
# The student notebook


def _exercise(block: Block, where: str) -> Exercise:
    label = block.options.get("label", "").strip()
    if not label:
        raise SolutionMarkerError(f"{where}: an exercise without a :label: ({block.raw.splitlines()[0]!r} …)")
    found = DIFFICULTY.search(block.body)
    statement = block.body
    if found:
        statement = (block.body[:found.start()] + block.body[found.end():]).strip("\n")
    return Exercise(label, block.argument, re.sub(r"\n{3,}", "\n\n", statement).strip(),
                    found.group("value") if found else None)


def exercise_cell_text(ex: Exercise) -> str:
    head = f"**Exercise `{ex.label}`**" + (f": {ex.title}" if ex.title else "")
    if ex.difficulty:
        head += f" · Difficulty: {ex.difficulty}"
    return f"{head}\n\n{ex.statement}"


def student_notebook(nb, where: str = "chapter"):
    """``nb`` (a jupytext notebook) without solutions and outputs; returns ``(notebook, exercises)``."""
    exercises: dict[str, Exercise] = {}
    cells: list = []
    open_label: str | None = None

    def flush(pieces: list[str]) -> None:
        text = _join(pieces)
        if text:
            cells.append(nbformat.v4.new_markdown_cell(text))
        pieces.clear()

    def close(label: str) -> None:
        ex = exercises[label]
        if ex.has_code:
            cells.append(nbformat.v4.new_code_cell(f"# Exercise {label}: your code here\n",
                                                   metadata={"xdtutor": {"answer": label}}))
        else:
            cells.append(nbformat.v4.new_markdown_cell(f"*Your answer to exercise `{label}`:*",
                                                       metadata={"xdtutor": {"answer": label}}))

    def solution_for(block: Block) -> Exercise:
        label = block.argument.split()[0] if block.argument else ""
        if label not in exercises:
            raise SolutionMarkerError(f"{where}: a {{{block.name}}} for {label or '(no label)'!r}, "
                                      f"which is not an exercise above it")
        if exercises[label].solved:
            raise SolutionMarkerError(f"{where}: exercise {label!r} has two solutions")
        exercises[label].solved = True
        return exercises[label]

    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            if open_label is not None:
                exercises[open_label].solution.append((cell.cell_type, cell.source, index))
            elif cell.cell_type == "code":
                cells.append(nbformat.v4.new_code_cell(cell.source, metadata=copy.deepcopy(dict(cell.metadata))))
            else:
                cells.append(nbformat.v4.new_raw_cell(cell.source, metadata=copy.deepcopy(dict(cell.metadata))))
            continue
        pieces: list[str] = []
        for block in split_markdown(cell.source, f"{where}, cell {index}"):
            if open_label is not None:
                if block.name == "solution-end":
                    label, open_label = open_label, None
                    close(label)
                elif block.name in ("solution-start", "solution", "exercise"):
                    raise SolutionMarkerError(f"{where}, cell {index}: {{{block.name}}} inside the solution of "
                                              f"{open_label!r} (a missing solution-end?)")
                else:
                    exercises[open_label].solution.append(("markdown", block.raw, index))
                continue
            if block.name == "exercise":
                ex = _exercise(block, f"{where}, cell {index}")
                if ex.label in exercises:
                    raise SolutionMarkerError(f"{where}: two exercises labelled {ex.label!r}")
                exercises[ex.label] = ex
                flush(pieces)
                cells.append(nbformat.v4.new_markdown_cell(exercise_cell_text(ex), metadata={
                    "xdtutor": {"exercise": ex.label, "difficulty": ex.difficulty}}))
            elif block.name == "solution-start":
                flush(pieces)
                open_label = solution_for(block).label
            elif block.name == "solution":
                ex = solution_for(block)
                ex.solution.append(("markdown", block.body, index))
                flush(pieces)
                close(ex.label)
            elif block.name == "solution-end":
                raise SolutionMarkerError(f"{where}, cell {index}: a solution-end without a solution-start")
            else:
                pieces.append(block.raw)
        flush(pieces)
    if open_label is not None:
        raise SolutionMarkerError(f"{where}: the solution of {open_label!r} has no solution-end")

    out = nbformat.v4.new_notebook()
    out.metadata = {k: copy.deepcopy(v) for k, v in nb.metadata.items() if k != "jupytext"}
    out.metadata["xdtutor"] = {"student": True, "exercises": list(exercises)}
    if cells and exercises:
        note = (f"> **Student version.** Each of the {len(exercises)} exercises under *Exercises* is followed by "
                "an empty cell for your answer; the solutions are not included. Run the cells from the top, in "
                "order: the exercises use what the chapter computed.")
        cells.insert(1, nbformat.v4.new_markdown_cell(note, metadata={"xdtutor": {"note": True}}))
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"          # the same notebook on every build (nbformat draws random ids)
    out.cells = cells
    nbformat.validate(out)
    return out, list(exercises.values())


# --------------------------------------------------------------------------------------------------
# The answer key


def glue_values(nb) -> dict[str, dict[str, str]]:
    """Every ``glue``d value of an executed notebook: ``name -> {mime type: value}``."""
    values: dict[str, dict[str, str]] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            scrap = out.get("metadata", {}).get("scrapbook", {})
            if "name" in scrap:
                prefix = scrap.get("mime_prefix", "")
                values[scrap["name"]] = {k[len(prefix):]: v for k, v in out.get("data", {}).items()
                                         if k.startswith(prefix)}
    return values


def fill_glue(text: str, values: dict[str, dict[str, str]]) -> str:
    """Replace ``{glue:text}`key:fmt``` (and ``glue:md``, ``glue``) by the run's value; unknown keys stay."""

    def one(m: re.Match) -> str:
        data = values.get(m.group("key").strip())
        if data is None:
            return m.group(0)
        if m.group("kind") == "md" and "text/markdown" in data:
            return data["text/markdown"]
        plain = data.get("text/plain")
        if plain is None:
            return m.group(0)
        try:
            value = ast.literal_eval(plain)
        except (ValueError, SyntaxError):
            value = plain
        try:
            return format(value, m.group("fmt") or "")
        except (ValueError, TypeError):
            return str(value)

    return GLUE_ROLE.sub(one, text)


def cell_output(cell) -> str:
    """The text a code cell printed (stdout and the value it returned), shortened."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data") and "metadata" in out \
                and "scrapbook" not in out.get("metadata", {}):
            data = out.get("data", {})
            if "image/png" in data:
                parts.append("[a figure]\n")
            elif "text/plain" in data:
                parts.append(data["text/plain"].rstrip("\n") + "\n")
    lines = "".join(parts).rstrip("\n").splitlines()
    if len(lines) > OUTPUT_LINES:
        lines = lines[:OUTPUT_LINES] + [f"… ({len(lines) - OUTPUT_LINES} more lines)"]
    return "\n".join(lines)


def _fenced(text: str, info: str) -> str:
    ticks = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    return f"{ticks}{info}\n{text.rstrip()}\n{ticks}"


def answer_key(title: str, source: str, exercises: list[Exercise], executed=None, executed_name: str = "") -> str:
    """The answer key of one chapter as Markdown."""
    values = glue_values(executed) if executed is not None else {}
    run_cells = executed.cells if executed is not None else []
    lines = [f"# Answer key: {title}", "",
             f"For instructors. Generated by `scripts/student_notebooks.py` from `{source}`; do not edit "
             "(regenerate with `make student`). Code solutions are cells of the chapter: they run after the "
             "chapter's own cells, in order, and their `assert`s check the stated answer."]
    if executed is not None:
        lines += ["", f"Outputs and the `{{glue}}` values in the text are those of the committed CI-scale run "
                      f"`{executed_name}`; another scale or seed gives other numbers."]
    lines += ["", "| exercise | difficulty | solution |", "|---|---|---|"]
    for ex in exercises:
        kinds = sorted({"code" if k == "code" else "text" for k, _, _ in ex.solution}) or ["none"]
        lines.append(f"| `{ex.label}` | {ex.difficulty or 'not given'} | {' + '.join(kinds)} |")
    for ex in exercises:
        lines += ["", f"## {ex.label}" + (f": {ex.title}" if ex.title else ""), "",
                  f"Difficulty: {ex.difficulty or 'not given'}", "", "**Exercise.**", "",
                  fill_glue(ex.statement, values), "", "**Solution.**", ""]
        if not ex.solution:
            lines += ["(The chapter has no solution for this exercise.)", ""]
        for kind, text, index in ex.solution:
            if kind == "code":
                lines += [_fenced(text, "python"), ""]
                ran = run_cells[index] if index is not None and index < len(run_cells) else None
                if ran is not None and ran.cell_type == "code" and ran.source.strip() == text.strip():
                    shown = cell_output(ran)
                    if shown:
                        lines += ["Output of the committed run:", "", _fenced(shown, "text"), ""]
            elif kind == "markdown":
                body = fill_glue(text, values).strip()
                if body:
                    lines += [body, ""]
            else:
                lines += [_fenced(text, ""), ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------
# The build


def chapter_sources() -> list[Path]:
    return sorted(CHAPTERS.glob("[0-9][0-9]_*.md"))


def chapter_title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^# (.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


def build(sources: list[Path], out: Path, notebooks: Path = NOTEBOOKS, clean: bool = False) -> dict[str, list[Exercise]]:
    """Write ``out/student/*.ipynb`` and ``out/answer_key/*.md`` for ``sources``; returns the exercises."""
    student_dir, key_dir = out / "student", out / "answer_key"
    if clean:
        for folder in (student_dir, key_dir):
            shutil.rmtree(folder, ignore_errors=True)
    student_dir.mkdir(parents=True, exist_ok=True)
    key_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[Exercise]] = {}
    for source in sources:
        shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
        nb = jupytext.read(source)
        student, exercises = student_notebook(nb, str(shown))
        nbformat.write(student, student_dir / f"{source.stem}.ipynb")
        executed_path = notebooks / f"{source.stem}.ipynb"
        executed = nbformat.read(executed_path, as_version=4) if executed_path.exists() else None
        executed_name = str(executed_path.relative_to(ROOT) if executed_path.is_relative_to(ROOT) else executed_path)
        (key_dir / f"{source.stem}.md").write_text(
            answer_key(chapter_title(nb, source.stem), str(shown), exercises, executed, executed_name),
            encoding="utf-8")
        found[source.stem] = exercises
    index = ["# Answer key", "", "For instructors: every exercise of the book, with its difficulty (from the "
             "exercise's `Difficulty:` line). Generated by `scripts/student_notebooks.py`.", "",
             "| chapter | exercise | difficulty |", "|---|---|---|"]
    for stem, exercises in found.items():
        for ex in exercises:
            index.append(f"| [{stem}]({stem}.md) | [`{ex.label}`]({stem}.md#{ex.label}) | {ex.difficulty or 'not given'} |")
    (key_dir / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="book/chapters/NN_name.md (default: every chapter)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: build/)")
    args = parser.parse_args(argv)
    sources = [p.resolve() for p in args.chapters] or chapter_sources()
    try:
        found = build(sources, args.out.resolve(), clean=not args.chapters)
    except SolutionMarkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    total = sum(len(v) for v in found.values())
    out = args.out.resolve()
    shown = out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out
    print(f"{len(found)} chapters, {total} exercises -> {shown / 'student'} (no solutions), "
          f"{shown / 'answer_key'} (with solutions)")
    for stem, exercises in found.items():
        missing = [ex.label for ex in exercises if not ex.difficulty]
        note = f"; no Difficulty: line: {', '.join(missing)}" if missing else ""
        print(f"  {stem}: {len(exercises)} exercises{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
