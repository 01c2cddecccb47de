"""The book's repository URL is one setting; without it the site has no repository links at all.

Set it for a build with the environment variable ``XDTUTOR_REPO_URL`` (for example
``XDTUTOR_REPO_URL=https://github.com/someone/xdtutor make book``) or, permanently, as ``repository.url``
in ``book/_config.yml`` (empty by default; the variable wins when both are set). ``XDTUTOR_REPO_BRANCH``
overrides ``repository.branch`` (default ``main``).

* **Set:** the repository, "open issue" and "suggest edit" buttons point at that repository, and the
  Binder and Colab launch buttons open the chapter's paired ``notebooks/NN_name.ipynb`` on its branch
  (``paired_notebooks.py`` retargets them from the ``.md`` source). Colab opens GitHub repositories
  only, so its button is dropped for other hosts.
* **Unset:** no repository, issue, edit or launch button is drawn, instead of buttons that point at a
  placeholder. The download button still offers each chapter's executed ``.ipynb`` (sphinx-book-theme
  copies it only while launch buttons are configured; :func:`offer_executed_notebook` does it then).

In both cases the MyST substitution ``{{ repository }}`` is the repository as a link, or a sentence
saying that no URL was set for this build (``book/run_yourself.md`` uses it).

Jupyter Book 1.x turns ``_config.yml`` into ``html_theme_options`` before Sphinx starts and refuses
``html.use_*_button: true`` without ``repository.url``, so ``_config.yml`` keeps those buttons off
and this extension, at ``config-inited`` (before the theme reads the options), decides.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from shutil import copy2

from sphinx.errors import ExtensionError

ENV_URL = "XDTUTOR_REPO_URL"
ENV_BRANCH = "XDTUTOR_REPO_BRANCH"
#: What Jupyter Book's own default config puts in ``repository.url`` when _config.yml does not set it.
JUPYTER_BOOK_DEFAULT_URL = "https://github.com/executablebooks/jupyter-book"
REPOSITORY_BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")
#: Keys of ``launch_buttons`` that make sphinx-book-theme draw a launch button.
LAUNCHERS = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url", "jupyterlite_url", "thebe")
_REPO = re.compile(r"^https?://[^/\s]+/[^/\s]+/[^/\s]+$")
NOT_SET = ("*not set for this build*: the site was built without `XDTUTOR_REPO_URL` (or `repository.url` "
           "in `book/_config.yml`), so it shows no repository or launch buttons")


def repository_url(theme_options: dict, environ=os.environ) -> str | None:
    """The repository URL of this build (``XDTUTOR_REPO_URL``, else ``repository.url``), or ``None``.

    Raises:
        ExtensionError: If the URL is not of the form ``https://host/owner/repository``.
    """
    url = (environ.get(ENV_URL) or "").strip() or str(theme_options.get("repository_url") or "").strip()
    url = url.rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    if not url or url == JUPYTER_BOOK_DEFAULT_URL:
        return None
    if not _REPO.match(url):
        raise ExtensionError(f"{ENV_URL} / repository.url must look like https://github.com/OWNER/REPO, got {url!r}")
    return url


def configure(theme_options: dict, environ=os.environ) -> tuple[dict, str | None]:
    """Theme options with the repository and launch buttons switched on (URL set) or off (unset).

    Returns a new ``html_theme_options`` dict and the URL (``None`` when unset); the input is not changed.
    """
    options = dict(theme_options)
    launch = dict(options.get("launch_buttons") or {})
    url = repository_url(options, environ)
    if url is None:
        options["repository_url"] = ""
        for key in REPOSITORY_BUTTONS:
            options[key] = False
        for key in LAUNCHERS:
            if key in launch:
                launch[key] = False if key == "thebe" else ""
    else:
        options["repository_url"] = url
        branch = (environ.get(ENV_BRANCH) or "").strip()
        if branch:
            options["repository_branch"] = branch
        for key in REPOSITORY_BUTTONS:
            options[key] = True
        if "://github.com/" not in url:
            launch.pop("colab_url", None)  # sphinx-book-theme: "Provider … not supported on colab"
    options["launch_buttons"] = launch
    return options, url


def launch_buttons_on(theme_options: dict) -> bool:
    """Whether sphinx-book-theme will draw launch buttons (and then copy the ``.ipynb`` itself)."""
    launch = theme_options.get("launch_buttons") or {}
    return any(launch.get(key) for key in LAUNCHERS)


def substitution(url: str | None) -> str:
    """The Markdown that ``{{ repository }}`` stands for."""
    return f"[{url}]({url})" if url else NOT_SET


#: The "Run it yourself" page's Colab cell names the repository on this line; a build with the URL set
#: fills it in, a build without it leaves the empty string, which the cell's next line turns into a
#: one-line request to paste the URL (never a placeholder repository).
REPO_LINE = 'REPO = ""  # the repository URL at the top of this page'


def fill_repository(source: str, url: str | None) -> str:
    """``source`` with :data:`REPO_LINE` naming ``url`` (unchanged when ``url`` is ``None``)."""
    return source.replace(REPO_LINE, f'REPO = "{url}"  # this book\'s repository') if url else source


def fill_repository_in_source(app, docname, source: list) -> None:
    """``source-read``: every page's copy of :data:`REPO_LINE` gets this build's repository URL."""
    source[0] = fill_repository(source[0], repository_url(app.config.html_theme_options or {}))


def apply_repository_setting(app, config) -> None:
    """``config-inited``: decide the buttons from the setting (see the module docstring)."""
    options, url = configure(config.html_theme_options or {})
    config.html_theme_options = options
    substitutions = dict(getattr(config, "myst_substitutions", None) or {})
    substitutions["repository"] = substitution(url)
    config.myst_substitutions = substitutions


def offer_executed_notebook(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``, before the theme's buttons (priority 500 < 501): without launch buttons,
    copy a Markdown notebook's executed ``.ipynb`` to ``_sources/`` and offer it for download, which
    sphinx-book-theme does only while launch buttons are configured."""
    if launch_buttons_on(app.config.html_theme_options or {}):
        return
    sourcename = context.get("sourcename") or ""
    if not sourcename.endswith((".md", ".md.txt")):
        return
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    app.connect("config-inited", apply_repository_setting)
    app.connect("source-read", fill_repository_in_source)
    app.connect("html-page-context", offer_executed_notebook, priority=500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
