"""The book's configuration, checked in seconds without building the book (``tests/test_book.py`` does that).

* The repository URL setting (``book/_ext/repository_links.py``): with ``XDTUTOR_REPO_URL`` unset no
  repository, issue, edit or launch button points anywhere; set, all of them point at that repository.
  The extension is called on the theme options that Jupyter Book makes from the real ``_config.yml``,
  with a stand-in for Sphinx's app and config, then checked inside the real theme by a two-page
  Jupyter Book build with and without the setting (a few seconds each, nothing executed).
* The launch buttons open the paired ``notebooks/NN_name.ipynb`` (``book/_ext/paired_notebooks.py``).
* ``CITATION.cff``, the bibliography keys, the "Run it yourself" page and its commands.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
EXT = BOOK / "_ext"
URL = "https://github.com/someone/xdtutor"
PLACEHOLDER = "xdtutor/xdtutor"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_book_ext_{name}", EXT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def links():
    pytest.importorskip("sphinx")
    return _load("repository_links")


@pytest.fixture
def no_setting(monkeypatch):
    monkeypatch.delenv("XDTUTOR_REPO_URL", raising=False)
    monkeypatch.delenv("XDTUTOR_REPO_BRANCH", raising=False)


@pytest.fixture
def theme_options(monkeypatch) -> dict:
    """``html_theme_options`` as Jupyter Book makes them from ``book/_config.yml`` (it raises when a
    repository button is on without a URL, so this also checks that the config is accepted)."""
    jb_config = pytest.importorskip("jupyter_book.config")
    monkeypatch.setattr(sys, "path", list(sys.path))  # get_final_config appends book/_ext
    config, _ = jb_config.get_final_config(user_yaml=BOOK / "_config.yml", cli_config={"latex_individualpages": False},
                                           sourcedir=BOOK)
    return config["html_theme_options"]


def _apply(links, options: dict) -> SimpleNamespace:
    config = SimpleNamespace(html_theme_options=dict(options), myst_substitutions={})
    links.apply_repository_setting(SimpleNamespace(config=config), config)
    return config


def test_config_yml_sets_no_repository_by_default():
    config = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["url"] == "", "the repository URL is set by XDTUTOR_REPO_URL, empty by default"
    for button in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        assert config["html"][button] is False, f"{button}: repository_links.py switches it on with the URL"
    assert set(config["sphinx"]["local_extensions"]) >= {"repository_links", "paired_notebooks"}


def test_without_the_setting_no_button_points_anywhere(links, no_setting, theme_options):
    config = _apply(links, theme_options)
    options = config.html_theme_options
    assert options["repository_url"] == ""
    for button in links.REPOSITORY_BUTTONS:
        assert options[button] is False
    assert not links.launch_buttons_on(options)
    launch = options["launch_buttons"]
    assert not any(launch.get(key) for key in links.LAUNCHERS), launch
    assert launch["notebook_interface"] == "jupyterlab"  # the rest of the settings stay
    assert config.myst_substitutions["repository"] == links.NOT_SET
    assert "github.com" not in repr(options) and "mybinder" not in repr(options)


def test_with_the_setting_every_button_points_at_the_repository(links, no_setting, monkeypatch, theme_options):
    monkeypatch.setenv("XDTUTOR_REPO_URL", URL + "/")
    config = _apply(links, theme_options)
    options = config.html_theme_options
    assert options["repository_url"] == URL
    assert options["repository_branch"] == "main" and options["path_to_docs"] == "book"
    for button in links.REPOSITORY_BUTTONS:
        assert options[button] is True
    launch = options["launch_buttons"]
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert launch["colab_url"] == "https://colab.research.google.com"
    assert links.launch_buttons_on(options)
    assert config.myst_substitutions["repository"] == f"[{URL}]({URL})"

    monkeypatch.setenv("XDTUTOR_REPO_BRANCH", "release")
    assert _apply(links, theme_options).html_theme_options["repository_branch"] == "release"


def test_repository_url_in_config_yml_is_the_same_setting(links):
    options = {"repository_url": "https://github.com/owner/repo.git", "launch_buttons": {"binderhub_url": "https://mybinder.org"}}
    configured, url = links.configure(options, {})
    assert url == "https://github.com/owner/repo" and configured["use_issues_button"] is True
    assert options["repository_url"].endswith(".git"), "configure returns a new dict"
    _, url = links.configure(options, {"XDTUTOR_REPO_URL": URL})
    assert url == URL, "the environment variable wins over _config.yml"


def test_jupyter_books_default_and_bad_urls(links):
    from sphinx.errors import ExtensionError

    jb_default = {"repository_url": links.JUPYTER_BOOK_DEFAULT_URL, "use_repository_button": True}
    configured, url = links.configure(jb_default, {})
    assert url is None and configured["use_repository_button"] is False
    for bad in ("github.com/owner/repo", "https://github.com/owner", "https://github.com/o/r/tree/main"):
        with pytest.raises(ExtensionError, match="XDTUTOR_REPO_URL"):
            links.configure({}, {"XDTUTOR_REPO_URL": bad})
    gitlab = {"launch_buttons": {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com"}}
    configured, _ = links.configure(gitlab, {"XDTUTOR_REPO_URL": "https://gitlab.com/owner/repo"})
    assert "colab_url" not in configured["launch_buttons"], "Colab opens GitHub repositories only"
    assert configured["launch_buttons"]["binderhub_url"]


def test_the_executed_notebook_stays_downloadable_without_launch_buttons(links, tmp_path):
    html = tmp_path / "_build" / "html"
    executed = tmp_path / "_build" / "jupyter_execute" / "chapters" / "01_x.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text("{}")
    app = SimpleNamespace(outdir=str(html), config=SimpleNamespace(html_theme_options={"launch_buttons": {"colab_url": ""}}),
                          env=SimpleNamespace(metadata={"chapters/01_x": {"kernelspec": {"name": "python3"}}, "intro": {}}))
    context = {"sourcename": "chapters/01_x.md"}
    links.offer_executed_notebook(app, "chapters/01_x", "page.html", context, None)
    assert context["ipynb_source"] == "chapters/01_x.ipynb"
    assert (html / "_sources" / "chapters" / "01_x.ipynb").read_text() == "{}"

    page = {"sourcename": "intro.md"}  # a page without code
    links.offer_executed_notebook(app, "intro", "page.html", page, None)
    assert "ipynb_source" not in page
    app.config.html_theme_options = {"launch_buttons": {"colab_url": "https://colab.research.google.com"}}
    themed = {"sourcename": "chapters/01_x.md"}  # with launch buttons sphinx-book-theme copies it itself
    links.offer_executed_notebook(app, "chapters/01_x", "page.html", themed, None)
    assert "ipynb_source" not in themed


def test_launch_buttons_open_the_paired_notebook():
    paired = _load("paired_notebooks")
    colab = "https://colab.research.google.com/github/someone/xdtutor/blob/main/book/chapters/05_case_study.md"
    binder = "https://mybinder.org/v2/gh/someone/xdtutor/main?urlpath=lab/tree/book/chapters/05_case_study.md"
    edit = "https://github.com/someone/xdtutor/edit/main/book/chapters/05_case_study.md"
    context = {"header_buttons": [
        {"type": "group", "label": "launch-buttons", "buttons": [{"url": binder}, {"url": colab}]},
        {"type": "group", "label": "source-buttons", "buttons": [{"url": edit}]},
    ]}
    paired.retarget_launch_buttons(None, "chapters/05_case_study", "page.html", context, None)
    launch, source = context["header_buttons"]
    assert [b["url"] for b in launch["buttons"]] == [
        "https://mybinder.org/v2/gh/someone/xdtutor/main?urlpath=lab/tree/notebooks/05_case_study.ipynb",
        "https://colab.research.google.com/github/someone/xdtutor/blob/main/notebooks/05_case_study.ipynb"]
    assert source["buttons"][0]["url"] == edit, "the edit button keeps the Markdown source"


def _mini_book(tmp_path: Path) -> Path:
    """Two pages (one a Markdown notebook) with the real _config.yml's button settings, nothing executed."""
    real = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    config = {
        "title": "mini", "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        "parse": {"myst_enable_extensions": ["substitution"]},
        "html": {k: v for k, v in real["html"].items() if k.startswith("use_")},
        "launch_buttons": real["launch_buttons"], "repository": real["repository"],
        "sphinx": {"local_extensions": {name: str(EXT) for name in real["sphinx"]["local_extensions"]}},
    }
    (book / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapters/01_x\n", encoding="utf-8")
    (book / "intro.md").write_text("# Intro\n\nRepository: {{ repository }}\n", encoding="utf-8")
    (book / "chapters" / "01_x.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n"
        "# X\n\n```{code-cell} ipython3\nprint(1)\n```\n", encoding="utf-8")
    return book


@pytest.mark.parametrize("url", [None, URL])
def test_a_small_book_build_with_and_without_the_setting(tmp_path, url):
    pytest.importorskip("jupyter_book")
    book = _mini_book(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDTUTOR_REPO_")}
    if url:
        env["XDTUTOR_REPO_URL"] = url
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(book),
                           "--path-output", str(out), "-W", "--keep-going"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    html = out / "_build" / "html"
    page = (html / "chapters" / "01_x.html").read_text(encoding="utf-8")
    intro = (html / "intro.html").read_text(encoding="utf-8")
    assert "_sources/chapters/01_x.ipynb" in page and (html / "_sources" / "chapters" / "01_x.ipynb").is_file()
    labels = ("launch-buttons", "source-repository-button", "source-issues-button", "source-edit-button")
    if url is None:
        for label in labels:
            assert label not in page, label
        assert not re.search(r'href="https://(github\.com|mybinder\.org|colab\.research)', page)
        assert "not set for this build" in intro
    else:
        for label in labels:
            assert label in page, label
        assert 'href="https://colab.research.google.com/github/someone/xdtutor/blob/main/notebooks/01_x.ipynb"' in page
        assert 'href="https://mybinder.org/v2/gh/someone/xdtutor/main?urlpath=lab/tree/notebooks/01_x.ipynb"' in page
        assert f'href="{URL}/edit/main/book/chapters/01_x.md"' in page
        assert f'href="{URL}"' in page and f'href="{URL}"' in intro


def test_no_placeholder_repository_and_no_stale_citation_text():
    files = [*BOOK.glob("*.md"), *BOOK.glob("chapters/*.md"), BOOK / "_config.yml", ROOT / "docs" / "publishing.md",
             ROOT / "CITATION.cff"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert PLACEHOLDER not in text, f"{path.relative_to(ROOT)} links the placeholder repository"
        assert not re.search(r"CITATION[^\n]*when it\s+exists", text), f"{path.relative_to(ROOT)}: CITATION.cff exists now"


def test_citation_cff():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff.get(key), key
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    assert str(cff["version"]) == version, "CITATION.cff's version follows pyproject.toml"
    assert cff["license"] == "MIT"
    released = cff["date-released"]
    assert isinstance(released, date) or date.fromisoformat(str(released))
    if "repository-code" in cff:
        assert PLACEHOLDER not in cff["repository-code"]


def _bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text(encoding="utf-8"), re.M)


def test_every_cited_key_is_in_the_bibliography_once():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})
    for path in [*BOOK.glob("*.md"), *BOOK.glob("chapters/*.md")]:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text(encoding="utf-8")):
            for key in group.split(","):
                assert key.strip() in keys, f"{path.relative_to(ROOT)} cites {key.strip()!r}, not in references.bib"


def test_chapter_8_names_the_articles_wrong_references():
    text = (BOOK / "08_tools_resources.md").read_text(encoding="utf-8")
    for needed in ("Kaelbling", "项亮", "2012", "Baird", "{cite}`goodfellow2016deep`", "{cite}`xiang2012recsys`",
                   "{cite}`zhao2018deeppage`", "{cite}`chen2019topk`", "{cite}`afsar2022rlsurvey`"):
        assert needed in text, needed


def test_run_yourself_is_in_the_toc_and_its_commands_exist():
    toc = (BOOK / "_toc.yml").read_text(encoding="utf-8")
    assert re.search(r"file:\s*run_yourself\b", toc)
    assert "(run_yourself.md)" in (BOOK / "intro.md").read_text(encoding="utf-8")
    page = (BOOK / "run_yourself.md").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    used = set(re.findall(r"(?:^|[`\s])make ([a-z][\w-]*)", page, re.M))
    assert used >= {"install", "book", "test", "test-fast"}, used
    assert used <= targets, used - targets
    paths = set(re.findall(r"\b((?:scripts|constraints|configs|benchmarks|notebooks|book/chapters)/[\w.-]+\.\w+)", page))
    paths |= {"environment.yml", "Makefile"}
    for path in sorted(paths):
        if "NN_name" not in path:
            assert (ROOT / path).exists(), f"run_yourself.md names {path}, which does not exist"
    for section in ("venv", "conda", "Colab", "Binder", "GPU", "full scale", "XDTUTOR_SCALE=full", "TORCH_INDEX=cpu",
                    "{{ repository }}"):
        assert section in page, section


def test_the_colab_cell_names_the_built_repository_or_asks_for_it(links):
    """The Colab install cell has no placeholder repository: a build with the URL set writes it into the
    cell; without it the cell stops with a one-line request to paste the URL."""
    page = (BOOK / "run_yourself.md").read_text(encoding="utf-8")
    assert links.REPO_LINE in page and "OWNER" not in page.split("(run-colab)=")[1].split("(run-binder)=")[0]
    assert 'raise SystemExit("Set REPO: the repository URL' in page
    filled = links.fill_repository(page, URL)
    assert f'REPO = "{URL}"' in filled and links.REPO_LINE not in filled
    assert links.fill_repository(page, None) == page
    app = SimpleNamespace(config=SimpleNamespace(html_theme_options={"repository_url": URL}))
    source = [page]
    links.fill_repository_in_source(app, "run_yourself", source)
    assert source[0] == filled


def test_every_notebook_can_install_its_package_on_colab():
    """Each chapter's first code cell installs xdtutor where it is missing (Colab) — hidden on the site,
    before the parameters cell in the notebook — and stops with a one-line request while the repository
    URL is unset; the Colab section of "Run it yourself" points at it."""
    import json

    for md in sorted((BOOK / "chapters").glob("*.md")):
        cells = [c for c in json.loads((ROOT / "notebooks" / f"{md.stem}.ipynb").read_text(encoding="utf-8"))["cells"]
                 if c["cell_type"] == "code"]
        first, second = ("".join(c["source"]) for c in cells[:2])
        assert 'find_spec("xdtutor") is None' in first and "pip install" in first, md.name
        assert 'raise SystemExit("Set REPO' in first and "OWNER" not in first, md.name
        assert "remove-cell" in cells[0]["metadata"].get("tags", []), md.name
        assert "parameters" in cells[1]["metadata"].get("tags", []), md.name
    colab = (BOOK / "run_yourself.md").read_text(encoding="utf-8").split("(run-colab)=")[1].split("(run-binder)=")[0]
    assert "first code cell" in colab


#: Characters of code that fit the article column of a 1280-pixel window (code at 0.8rem,
#: book/_static/code.css); tests/test_book.py measures the rendered pages in a browser.
CODE_WIDTH = 84


def _displayed_code_lines(path: Path, hidden: bool = False) -> list[tuple[int, str]]:
    """(line number, line) of the code a reader sees: bodies of code cells (not tagged remove-input or
    remove-cell, unless ``hidden``: a notebook shows those too) and of plain ``` fences; directive bodies
    (notes, exercises) are prose."""
    lines = path.read_text(encoding="utf-8").split("\n")
    stack: list[tuple[str, bool]] = []  # (fence, shown code?)
    found = []
    for i, line in enumerate(lines, 1):
        fence = re.match(r"^\s*(`{3,}|~{3,})(.*)$", line)
        if fence:
            ticks, info = fence.group(1), fence.group(2).strip()
            if stack and stack[-1][0] == ticks and not info:
                stack.pop()
            elif info.startswith("{code-cell}"):
                options = [o for o in lines[i:i + 5] if o.startswith(":")]
                stack.append((ticks, hidden or not any(re.search(r"remove-(input|cell)", o) for o in options)))
            else:
                stack.append((ticks, not info.startswith("{")))
            continue
        if stack and stack[-1][1] and not line.startswith(":"):
            found.append((i, line))
    return found


def test_code_lines_fit_a_1280_pixel_page():
    pages = sorted(BOOK.glob("*.md")) + sorted((BOOK / "chapters").glob("*.md"))
    assert len(pages) > 10
    long = [f"{p.relative_to(ROOT)}:{i}: {len(line)} characters" for p in pages
            for i, line in _displayed_code_lines(p) if len(line) > CODE_WIDTH]
    assert not long, f"code lines over {CODE_WIDTH} characters scroll sideways:\n" + "\n".join(long)


def test_every_code_cell_line_fits_a_page():
    """Every line of every code cell fits, hidden cells too: on Colab and in a downloaded notebook every
    cell shows, hidden ones too; the rendered-site overflow check sees only visible cells."""
    chapters = sorted((BOOK / "chapters").glob("*.md"))
    assert len(chapters) > 5
    long = [f"{md.relative_to(ROOT)}:{i}:{len(line)}" for md in chapters
            for i, line in _displayed_code_lines(md, hidden=True) if len(line) > CODE_WIDTH]
    assert not long, f"code-cell lines over {CODE_WIDTH} characters:\n" + "\n".join(long)


def test_epoch_lines_only_at_full_scale(capsys, monkeypatch):
    """A chapter prints one line per training epoch only at full scale (minutes per training); at CI
    scale, the committed notebooks' scale, they would be a wall of stderr in every notebook."""
    import logging

    import torch

    from xdtutor import book
    from xdtutor.book import setup

    monkeypatch.setattr(book, "get_ipython", lambda: None)  # no inline-figure magic outside a kernel
    loggers = [logging.getLogger(name) for name in ("xdtutor", "xdtutor.train")]
    saved = [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    threads = torch.get_num_threads()
    train_log = loggers[1]
    try:
        setup("ci")
        train_log.info("seed0/text epoch 1/2")
        assert "epoch" not in capsys.readouterr().err
        setup("full")
        train_log.info("seed0/text epoch 1/2")
        assert "seed0/text epoch 1/2" in capsys.readouterr().err
    finally:  # leave logging as the other tests expect it: no handlers bound to this test's capture
        for lg, handlers, propagate, level in saved:
            lg.handlers[:] = handlers
            lg.propagate, lg.level = propagate, level
        torch.set_num_threads(threads)


def test_committed_notebooks_are_not_walls_of_stderr():
    """No cell of a committed notebook (what Colab, Binder and GitHub open) prints more than a few
    lines to stderr."""
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            lines = sum(o.get("text", "").count("\n") for o in cell.get("outputs", [])
                        if o.get("output_type") == "stream" and o.get("name") == "stderr")
            assert lines <= 5, f"{path.name} cell {i}: {lines} lines on stderr"


def test_a_chapters_checkpoint_folder_is_the_repositorys(monkeypatch, tmp_path):
    """configs/kitchen_to_food.yaml keeps θ_s in ``runs/checkpoints`` at full scale; a chapter's kernel runs in
    ``notebooks/``, and the folder must still be the repository's (shared with ``xdtutor run``), not
    ``notebooks/runs/checkpoints``."""
    import torch

    from xdtutor import book
    from xdtutor.book import setup

    import logging

    monkeypatch.setattr(book, "get_ipython", lambda: None)
    monkeypatch.chdir(ROOT / "notebooks")
    threads = torch.get_num_threads()
    loggers = [logging.getLogger(name) for name in ("xdtutor", "xdtutor.train")]
    saved = [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    try:
        run = setup("full", device="cpu")
        assert run.config("kitchen_to_food").checkpoint_dir == str(ROOT / "runs" / "checkpoints")
        mine = str(tmp_path / "ckpt")
        assert run.config("kitchen_to_food", ("checkpoint_dir", mine)).checkpoint_dir == mine
        assert run.config("kitchen_to_food", ("checkpoint_dir", "here")).checkpoint_dir == "here"  # as given
        assert setup("ci", device="cpu").config("kitchen_to_food").checkpoint_dir is None  # CI: none
    finally:  # setup binds the loggers to this test's streams: leave them as the other tests expect
        for lg, handlers, propagate, level in saved:
            lg.handlers[:] = handlers
            lg.propagate, lg.level = propagate, level
        torch.set_num_threads(threads)
