"""Launch buttons open the executed notebook of a chapter, not its Markdown source.

Each chapter is a MyST Markdown notebook (``book/chapters/NN_name.md``) paired by jupytext with an
executed ``notebooks/NN_name.ipynb``. sphinx-book-theme builds its Binder/Colab/JupyterHub links
from the page's source file, which for a chapter is the ``.md`` — a file Colab cannot open. This
extension runs after the theme (priority 502 > 501) and points those links at the paired notebook.
Launch buttons exist only when the repository URL is set (``repository_links.py``, the other local
extension); without it there is nothing to retarget.
"""

from __future__ import annotations

from pathlib import PurePosixPath

CHAPTERS = "book/chapters/"
NOTEBOOKS = "notebooks/"


def _retarget(url: str) -> str:
    """``…/book/chapters/05_case_study.md`` -> ``…/notebooks/05_case_study.ipynb`` (other URLs unchanged)."""
    if CHAPTERS not in url:
        return url
    head, tail = url.split(CHAPTERS, 1)
    name, sep, rest = tail.partition("&")
    stem = PurePosixPath(name).stem
    return f"{head}{NOTEBOOKS}{stem}.ipynb{sep}{rest}"


def _walk(buttons: list) -> None:
    for button in buttons:
        if isinstance(button, dict):
            if "url" in button:
                button["url"] = _retarget(button["url"])
            _walk(button.get("buttons", []))


def retarget_launch_buttons(app, pagename, templatename, context, doctree) -> None:
    if not pagename.startswith("chapters/"):
        return
    for group in context.get("header_buttons", []):  # the edit and source buttons keep the .md
        if isinstance(group, dict) and group.get("label") == "launch-buttons":
            _walk(group.get("buttons", []))


def setup(app):
    app.connect("html-page-context", retarget_launch_buttons, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
