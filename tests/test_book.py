"""The built website, checked in a real browser (marked ``slow``).

Builds the book exactly as ``make book`` does — every chapter's Markdown source executed at CI scale,
warnings as errors — into a temporary folder, or uses an existing build when ``XDTUTOR_BOOK_HTML``
points at one (e.g. ``book/_build/html`` after ``make book``); serves it on
127.0.0.1 with ``http.server`` in a thread, opens every page in headless Chromium (``--dump-dom``: the
DOM after scripts ran; Debian packages ``chromium`` and ``chromium-driver``) and checks that each page
loads, that every figure of a chapter is on its page, that glued numbers were filled in, that the launch
and edit buttons point at the repository of ``XDTUTOR_REPO_URL`` (and are absent without it), that pages
are not walls of training logs, that every internal link (and its ``#anchor``) resolves, and takes a
screenshot of every page (kept in ``$XDTUTOR_SCREENSHOTS`` when set) that must show a styled page.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urldefrag, urljoin, urlparse

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--virtual-time-budget=5000"]

# One worker builds the website once for every test here (``make test`` shares tests among pytest-xdist
# workers; without the group each worker that drew one of these tests would build the book again).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("website")]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _toc_docs() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                docs.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc.get("parts", toc.get("chapters", [])))
    return docs


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.stylesheets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "link" and "stylesheet" in (a.get("rel") or "").split() and a.get("href"):
            self.stylesheets.append(a["href"])


def _parse(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def site() -> Path:
    existing = os.environ.get("XDTUTOR_BOOK_HTML")
    if existing:
        path = Path(existing)
        if not (path / "intro.html").exists():
            pytest.fail(f"XDTUTOR_BOOK_HTML={existing} has no intro.html")
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="xdtutor-book-"))
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(BOOK),
           "--path-output", str(tmp), "-W", "--keep-going", "--all"]
    env = {**os.environ, "XDTUTOR_SCALE": "ci", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    yield tmp / "_build" / "html"
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def server(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


#: A page served by the test server only: it opens ``?page=…`` in a 1280-pixel-wide frame and lists the
#: code blocks (cell inputs and literal code, not outputs) wider than their box, i.e. that scroll sideways.
OVERFLOW_PAGE = b"""<!DOCTYPE html><html><body><script>
const frame = document.createElement("iframe");
frame.style.width = "1280px"; frame.style.height = "900px";
frame.src = new URLSearchParams(location.search).get("page");
frame.onload = () => setTimeout(() => {
  const found = [];
  for (const pre of frame.contentDocument.querySelectorAll("div.cell_input pre, div.highlight pre")) {
    if (pre.closest(".cell_output") || pre.scrollWidth <= pre.clientWidth + 1) continue;
    const lines = pre.textContent.split("\\n");
    found.push(lines.reduce((a, b) => (b.length > a.length ? b : a), ""));
  }
  const out = document.createElement("pre");
  out.id = "overflow"; out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
}, 1000);
document.body.appendChild(frame);
</script></body></html>"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass

    def do_GET(self):
        if urlparse(self.path).path == "/__overflow__.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(OVERFLOW_PAGE)))
            self.end_headers()
            self.wfile.write(OVERFLOW_PAGE)
            return
        super().do_GET()


def _dump_pages(server: str, url_of: Callable[[str], str], flags: Sequence[str] = ()) -> dict[str, str]:
    """doc name -> DOM of ``url_of(doc)`` (relative to the server) after Chromium ran its scripts."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium chromium-driver)")
    out = {}
    with tempfile.TemporaryDirectory(prefix="xdtutor-chromium-") as profile:
        for doc in _toc_docs():
            url = urljoin(server, url_of(doc))
            proc = subprocess.run([chromium, *CHROMIUM_FLAGS, *flags, f"--user-data-dir={profile}", "--dump-dom",
                                   url], capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"chromium failed on {url}: {proc.stderr[-2000:]}"
            out[doc] = proc.stdout
    return out


@pytest.fixture(scope="module")
def dumps(server: str) -> dict[str, str]:
    """doc name -> DOM of its page after Chromium ran the page's scripts."""
    return _dump_pages(server, lambda doc: doc + ".html")


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_book_builds_with_warnings_as_errors(site):
    """The build itself (no browser needed): -W passed in the fixture, every TOC page was written."""
    for doc in _toc_docs():
        assert (site / f"{doc}.html").exists(), f"{doc}.html missing from the build"
    assert (site / "_sources" / "chapters" / "01_background.ipynb").exists(), "notebooks not downloadable"


def test_every_page_loads_in_the_browser(dumps):
    for doc, dom in dumps.items():
        assert "<main" in dom and "bd-article" in dom, f"{doc}: page did not render (no article)"
        assert re.search(r"<h1[^>]*>", dom), f"{doc}: no title"
        assert "{glue" not in dom and "Failed to format" not in dom, f"{doc}: an unresolved glue reference"


def test_figures_are_on_the_pages(dumps, server, site):
    for doc, dom in dumps.items():
        if not doc.startswith("chapters/"):
            continue
        executed = site.parent / "jupyter_execute" / f"{doc}.ipynb"    # what this build ran
        nb = nbformat.read(executed if executed.exists() else ROOT / "notebooks" / f"{Path(doc).name}.ipynb", 4)
        expected = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                       and "remove-output" not in c.metadata.get("tags", []) and "remove-cell" not in c.metadata.get("tags", [])
                       for o in c.get("outputs", []))
        article = dom[dom.find("bd-article"):]
        images = [src for src in _parse(article).images if not src.endswith(".svg")]
        assert len(images) >= expected, f"{doc}: {len(images)} figures on the page, {expected} in the notebook"
        for src in images:
            if not src.startswith("data:"):
                status, _ = _fetch(urljoin(urljoin(server, doc + ".html"), src))
                assert status == 200, f"{doc}: figure {src} -> HTTP {status}"


def test_launch_and_download_buttons(dumps):
    """The repository URL is one setting (book/_ext/repository_links.py). Unset — the default; for an
    existing build, unset when this test runs as when the site was built — no page has a repository,
    issue, edit or launch button. Set (``XDTUTOR_REPO_URL``, a GitHub URL), every chapter's Binder and
    Colab buttons open its paired notebook there and its edit button its Markdown source. Each
    chapter offers its executed ``.ipynb`` for download either way."""
    url = os.environ.get("XDTUTOR_REPO_URL", "").strip().rstrip("/").removesuffix(".git")
    branch = os.environ.get("XDTUTOR_REPO_BRANCH", "").strip() or "main"
    labels = ("launch-buttons", "source-repository-button", "source-issues-button", "source-edit-button")
    for doc, dom in dumps.items():
        if not url:
            assert "xdtutor/xdtutor" not in dom, f"{doc}: a link to the placeholder repository"
            for label in labels:
                assert label not in dom, f"{doc}: {label} drawn without a repository URL"
            assert not re.search(r'href="https://(colab\.research\.google\.com/github/|mybinder\.org/v2/)', dom), \
                f"{doc}: a launch link without a repository URL"
            assert "/edit/main/book/" not in dom, f"{doc}: an edit link without a repository URL"
        if doc.startswith("chapters/"):
            assert f"_sources/{doc}.ipynb" in dom, f"{doc}: no .ipynb download"
            if url:
                owner_repo = url.split("github.com/", 1)[-1]
                notebook = f"notebooks/{Path(doc).name}.ipynb"  # the launch buttons open the paired notebook
                assert f"colab.research.google.com/github/{owner_repo}/blob/{branch}/{notebook}" in dom, f"{doc}: no Colab button"
                assert f"mybinder.org/v2/gh/{owner_repo}/{branch}?urlpath=lab/tree/{notebook}" in dom, f"{doc}: no Binder button"
                assert f"{url}/edit/{branch}/book/{doc}.md" in dom, f"{doc}: the edit button must open the Markdown source"


def test_internal_links_resolve(dumps, server):
    cache: dict[str, tuple[int, set[str]]] = {}
    for doc, dom in dumps.items():
        page_url = urljoin(server, doc + ".html")
        for href in _parse(dom).links:
            absolute = urljoin(page_url, href)
            if urlparse(absolute).netloc != urlparse(server).netloc:
                continue  # external links are not checked (offline)
            target, fragment = urldefrag(absolute)
            if target not in cache:
                status, body = _fetch(target)
                cache[target] = (status, _parse(body).ids if status == 200 and target.endswith(".html") else set())
            status, ids = cache[target]
            assert status == 200, f"{doc}: link {href} -> HTTP {status}"
            if fragment and target.endswith(".html"):
                assert fragment in ids, f"{doc}: link {href}: no element with id {fragment!r}"


def test_pages_are_not_log_walls(dumps):
    """What a reader sees of a run: the per-model summary lines, not training epochs, progress bars,
    widget warnings or tracebacks (the epochs stay in the notebooks, on stderr)."""
    for doc, dom in dumps.items():
        article = dom[dom.find("bd-article"):]
        for needle in ("IProgress", "Traceback (most recent call last)", "it/s]", "text/s]"):
            assert needle not in article, f"{doc}: {needle!r} in the page"
        assert not re.search(r"epoch \d+/\d+: loss", article), f"{doc}: per-epoch training lines in the page"


def test_math_renders_from_the_site_itself(dumps, site):
    """MathJax is served with the site (sphinx-mathjax-offline), so formulas render without a network."""
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for doc, dom in dumps.items():
        assert "cdn.jsdelivr.net/npm/mathjax" not in dom, f"{doc}: MathJax loaded from a CDN"
    assert "<mjx-container" in dumps["chapters/04_mathematics"], "chapter 4's formulas were not typeset"


def test_code_does_not_scroll_sideways_on_a_1280_pixel_page(server):
    """Every code block (cell inputs and literal code) fits its box in a 1280-pixel-wide window."""
    pages = _dump_pages(server, lambda doc: f"__overflow__.html?page=/{doc}.html", ["--window-size=1400,1000"])
    wide = {}
    for doc, dom in pages.items():
        found = re.search(r'<pre id="overflow">(.*?)</pre>', dom, re.S)
        assert found, f"{doc}: the overflow check did not run"
        lines = json.loads(html.unescape(found.group(1)))
        if lines:
            wide[doc] = lines
    assert not wide, "code that scrolls sideways (longest line of each block):\n" + "\n".join(
        f"  {doc}: {line!r}" for doc, lines in wide.items() for line in lines)


def _ink(png: Path) -> tuple[float, float]:
    """(fraction of the pixels drawn — not near-white — in the whole PNG, the same in its right half)."""
    from PIL import Image  # Pillow: a dependency of matplotlib

    img = Image.open(png).convert("L")

    def drawn(part) -> float:
        return sum(n for level, n in enumerate(part.histogram()) if level < 235) / (part.width * part.height)

    return drawn(img), drawn(img.crop((img.width // 2, 0, img.width, img.height)))


def test_every_page_screenshots_as_a_styled_page(server, dumps, tmp_path):
    """A 1280 × 900 screenshot of every page (PNG, ``<doc>.png``; kept for a reviewer in the folder
    ``$XDTUTOR_SCREENSHOTS`` when it is set): each page's stylesheets are served, and the browser drew a
    page, not a blank one, laid out by the theme — the article and its contents column fill the right
    half of the window, where unstyled HTML (a column of links at the left edge) leaves it empty."""
    chromium = _chromium()
    folder = Path(os.environ.get("XDTUTOR_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    bad, status = [], {}  # every page links the same theme stylesheets: each URL is fetched once
    with tempfile.TemporaryDirectory(prefix="xdtutor-chromium-") as profile:
        for doc, dom in dumps.items():
            page = urljoin(server, doc + ".html")
            sheets = _parse(dom).stylesheets
            for url in {urljoin(page, h) for h in sheets} - set(status):
                status[url] = _fetch(url)[0]
            missing = [h for h in sheets if status[urljoin(page, h)] != 200]
            assert sheets and not missing, f"{doc}: stylesheets not served: {missing or 'none linked'}"
            png = folder / f"{doc.replace('/', '__')}.png"
            proc = subprocess.run([chromium, *CHROMIUM_FLAGS, "--window-size=1280,900", "--hide-scrollbars",
                                   f"--user-data-dir={profile}", f"--screenshot={png}", page],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0 and png.is_file(), f"chromium screenshot of {page} failed: {proc.stderr[-2000:]}"
            whole, right = _ink(png)
            if whole < 0.02 or right < 0.01:  # measured: 5–8 % and 3–7 % on the styled pages, 0 % right unstyled
                bad.append(f"{doc}: {whole:.1%} of the window drawn, {right:.1%} of its right half ({png})")
    assert not bad, "pages that look blank or unstyled:\n" + "\n".join(bad)
