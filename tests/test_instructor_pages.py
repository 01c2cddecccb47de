"""The instructor's pages: syllabus, notation and glossary (fast; no build).

The syllabus schedules every page of the table of contents in some week and names only exercises that
exist; the notation page has the book's symbols; the glossary is the book's one glossary; and every
internal link of the three pages points at a file and a heading that exist, so a renamed section shows
up here, by name, before the ``-W`` build fails on it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from myst_parser.mdit_to_docutils.base import default_slugify

from test_notebooks import _toc_files

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PAGES = ("syllabus", "notation", "glossary")
HEADING_ANCHORS = 3  # myst_heading_anchors in book/_config.yml


def toc_docs() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
    return [toc["root"], *_toc_files(toc.get("parts", toc.get("chapters", [])))]


def read(doc: str) -> str:
    return (BOOK / f"{doc}.md").read_text(encoding="utf-8")


def exercise_labels() -> set[str]:
    labels = set()
    for path in (BOOK / "chapters").glob("*.md"):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^(`{3,}|:{3,})\{exercise\}[^\n]*\n(.*?)^\1\s*$", text, re.S | re.M):
            labels |= set(re.findall(r"^:label:\s*(\S+)", m.group(2), re.M))
    return labels


def target_labels() -> set[str]:
    """``(label)=`` targets of every page."""
    return {m for path in BOOK.rglob("*.md") if "_build" not in path.parts
            for m in re.findall(r"^\(([\w-]+)\)=\s*$", path.read_text(encoding="utf-8"), re.M)}


def without_fences(text: str) -> list[str]:
    """The lines of a MyST page outside fenced blocks (code cells, code examples)."""
    lines, fence = [], None
    for line in text.splitlines():
        m = re.match(r"^\s{0,3}(`{3,}|~{3,}|:{3,})", line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and re.fullmatch(rf"\s{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def heading_slugs(path: Path) -> set[str]:
    slugs = set()
    for line in without_fences(path.read_text(encoding="utf-8")):
        m = re.match(rf"^(#{{1,{HEADING_ANCHORS}}})\s+(.*?)\s*#*\s*$", line)
        if m:
            slugs.add(default_slugify(m.group(2)))
    return slugs


def links(text: str) -> list[str]:
    """Targets of Markdown links, outside code."""
    body = "\n".join(without_fences(text))
    body = re.sub(r"`[^`]*`", "", body)
    return re.findall(r"\]\(([^)\s]+)\)", body)


def weeks(text: str) -> dict[int, str]:
    """Week number -> the text of its section (from ``### Week N`` to the next heading of level 2 or 3)."""
    parts = re.split(r"^(###? .*)$", text, flags=re.M)
    out = {}
    for heading, body in zip(parts[1::2], parts[2::2]):
        m = re.match(r"### Week (\d+)\b", heading)
        if m:
            out[int(m.group(1))] = body
    return out


def test_the_three_pages_are_in_the_toc():
    docs = toc_docs()
    for page in PAGES:
        assert page in docs, f"book/_toc.yml does not list {page}"
        assert (BOOK / f"{page}.md").is_file()


def test_the_syllabus_plans_10_to_12_weeks():
    plan = weeks(read("syllabus"))
    assert 10 <= len(plan) <= 12, sorted(plan)
    assert sorted(plan) == list(range(1, len(plan) + 1)), "weeks are numbered 1, 2, 3, …"
    text = read("syllabus")
    for section in ("## Prerequisites", "## The course project", "## Assessment", "CPU", "GPU"):
        assert section in text, section
    weights = [int(w) for w in re.findall(r"^\|[^|\n]+\|\s*(\d+) %\s*\|[^|\n]*\|\s*$",
                                          text.split("## Assessment", 1)[1].split("\n## ", 1)[0], re.M)]
    assert sum(weights) == 100, weights


def test_every_exercise_the_syllabus_names_exists():
    known = exercise_labels()
    assert known, "no exercise found in book/chapters"
    for page in PAGES:
        named = set(re.findall(r"\bex-\d{2}-[\w-]*\w", read(page)))
        assert named <= known, f"{page}.md names exercises that no chapter has: {sorted(named - known)}"
    assert re.findall(r"\bex-\d{2}-[\w-]*\w", read("syllabus")), "the syllabus names no exercise"


def test_every_toc_page_is_scheduled_in_some_week():
    scheduled: set[str] = set()
    for body in weeks(read("syllabus")).values():
        for target in links(body):
            path = target.split("#")[0]
            if path.endswith(".md") and "://" not in path:
                scheduled.add(path[:-3])
        scheduled |= set(re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", body))
    missing = [doc for doc in toc_docs() if doc != "syllabus" and doc not in scheduled]
    assert not missing, f"pages of the table of contents no week of the syllabus schedules: {missing}"


@pytest.mark.parametrize("page", [*PAGES, "chapters/02_core_concepts"])
def test_internal_links_point_at_existing_pages_and_headings(page):
    """A link ``file.md#anchor`` needs the file and a heading whose MyST slug is the anchor."""
    source = BOOK / f"{page}.md"
    for target in links(source.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        file = (source.parent / path).resolve() if path else source
        assert file.is_file(), f"{page}.md links to {target}: no such file"
        if anchor:
            assert anchor in heading_slugs(file), (
                f"{page}.md links to {target}: {file.relative_to(BOOK)} has no heading with that anchor "
                f"(was the section renamed?)")


@pytest.mark.parametrize("page", PAGES)
def test_every_ref_resolves(page):
    targets = exercise_labels() | target_labels()
    for ref in re.findall(r"\{ref\}`(?:[^`<]*<)?([^`>]+)>?`", read(page)):
        assert ref in targets, f"{page}.md: {{ref}} to {ref!r}, which is no label"


def test_the_syllabus_points_at_the_measured_runtimes_and_the_student_build():
    text = read("syllabus")
    assert "(intro.md#time-per-chapter)" in text, "runtimes: link the preface's generated table"
    assert "make student" in text
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    assert "student" in targets


def test_the_notation_page_has_the_books_symbols():
    text = read("notation")
    for symbol in (r"\theta_s", r"\theta_t", r"\Delta\theta", r"\mathbf e_j", r"\mathbf v_j", r"a_\phi", "$H$", "$D$",
                   "$N_t$", "$N_s$", "$L$", r"$\tau$", "$K$", "NDCG@", "Recall@", "EMCDR", r"B \in", r"A \in", "$r$",
                   r"\alpha", "H_u^{(k)}", r"\mathbf x_u", r"\mathbf y_u", "$r_u$", r"\mathcal B"):
        assert symbol in text, symbol
    assert "04_mathematics.md#" in text


def test_the_glossary_is_the_books_one_glossary():
    text = read("glossary")
    assert text.count("```{glossary}") >= 1
    terms = set()
    for block in re.findall(r"```\{glossary\}\n(.*?)^```", text, re.S | re.M):
        terms |= {line.strip() for line in block.splitlines() if line and not line[0].isspace()
                  and not line.startswith(":")}
    for term in ("source domain", "target domain", "overlapping user", "cold user", "cold-start", "leave-one-out",
                 "full ranking", "θ_s", "knowledge", "adaptor", "zero-shot transfer", "L2-SP", "LoRA", "fusion",
                 "transductive", "mixed history", "joint training", "EMCDR", "popularity baseline", "SASRec",
                 "NDCG@K", "Recall@K", "validation and test", "seed", "bootstrap interval", "item encoder",
                 "pooling", "embedding", "fine-tuning", "negative transfer", "density"):
        assert term in terms, f"glossary: no entry {term!r}"
    for path in (BOOK / "chapters").glob("*.md"):
        assert "{glossary}" not in path.read_text(encoding="utf-8"), f"{path.name}: a second glossary"
    assert "(../glossary.md)" in read("chapters/02_core_concepts"), "chapter 2 points at the glossary"


def test_the_project_template_is_a_config_that_trains_to_convergence(tmp_path):
    """The course project's config (syllabus, step 2) loads as written, names only strategies and
    baselines the package has, and at full scale has no time cap: a template that extended the capped
    kitchen_to_food.yaml sent every team's "final three-seed run" out under 6-minute caps."""
    from xdtutor.baselines import BASELINES
    from xdtutor.experiment import load_config
    from xdtutor.transfer import STRATEGIES

    block = re.search(r"```yaml\n(.*?extends:.*?)```", read("syllabus"), re.S)
    assert block, "the syllabus has no project config"
    text = re.sub(r"^ {3}", "", block.group(1), flags=re.M)
    configs = shutil.copytree(ROOT / "configs", tmp_path / "configs")  # extends: is relative to the file
    mine = configs / "my_project.yaml"
    mine.write_text(text.replace("/path/to/FOLDER", str(tmp_path)), encoding="utf-8")
    config = load_config(mine, ["scale=full"])
    assert set(config.strategies) <= set(STRATEGIES) and set(config.baselines) <= set(BASELINES)
    assert config.train.max_train_minutes is None and config.pretrain.max_train_minutes is None
