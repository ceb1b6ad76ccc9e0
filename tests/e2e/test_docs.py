"""The documentation as a reader meets it: README.md, the site in docs/, and the catalog.

The site builds with ``mkdocs build --strict`` (a broken link or anchor between pages fails
it); the README's links into docs/ resolve; everything the README shows is also in the
reference; and the experiment catalog table is exactly what the experiment files give.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from markdown.extensions.toc import slugify
from pydantic import BaseModel

from lab import catalog_doc
from lab.spec import Experiment, load_experiment
from tests.conftest import REPO

DOCS = REPO / "docs"
_LINK_RE = re.compile(r"\[(?:[^\]\n]|\n)*?\]\(([^()\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a link or heading inside one is not one)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```.*?^```$", text, flags=re.S | re.M)


def _table_rows(text: str) -> list[str]:
    return [line for line in _prose(text).splitlines() if line.startswith("|")]


def _github_slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _anchors(markdown_text: str) -> tuple[set[str], set[str]]:
    """The heading anchors of a Markdown file, as GitHub and as MkDocs make them."""
    titles = [m.group(1) for m in re.finditer(r"^#{1,6} (.+)$", _prose(markdown_text), re.M)]
    plain = [re.sub(r"[`*_]", "", title) for title in titles]
    return {_github_slug(t) for t in plain}, {slugify(t, "-") for t in plain}


def test_the_docs_site_builds_with_strict(tmp_path: Path) -> None:
    """Every page is in the nav, and every link and anchor between pages resolves."""
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    pages = sorted(path.stem for path in DOCS.glob("*.md"))
    assert pages and all((site / f"{page}.html").is_file() for page in pages)
    # The built-in theme needs nothing from the network: no script or stylesheet from a CDN.
    built = (site / "index.html").read_text()
    assert not re.search(r"<(?:script|link)[^>]+(?:src|href)=\"https?://", built)


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """The build test above can fail: a copy of the docs with one bad anchor does not build."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "errors.md"
    page.write_text(page.read_text() + "\nSee [nothing](output.md#no-such-heading).\n")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "no-such-heading" in res.stderr


def _broken_links(source: Path) -> tuple[list[str], int]:
    """The relative links of a Markdown file that name no file, or no heading in it (as GitHub
    and MkDocs make anchors); and how many relative links it has."""
    links = [m.group(1) for m in _LINK_RE.finditer(_prose(source.read_text()))]
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    broken = []
    for link in relative:
        path, _, anchor = link.partition("#")
        target = (source.parent / path).resolve() if path else source
        if not target.exists():
            broken.append(f"{source.name}: {link}: no such file")
            continue
        if anchor:
            text = (target / "index.md" if target.is_dir() else target).read_text()
            github, mkdocs = _anchors(text)
            if anchor not in github or anchor not in mkdocs:
                broken.append(f"{source.name}: {link}: no heading with anchor #{anchor}")
    return broken, len(relative)


def test_readme_links_resolve() -> None:
    """Each relative link of README.md names a file that exists, and a heading in it."""
    broken, count = _broken_links(REPO / "README.md")
    assert count >= 10  # the README points into docs/ from every section
    assert broken == []
    assert _broken_links(REPO / "benchmarks" / "README.md")[0] == []


def test_links_between_docs_pages_resolve_on_github_too() -> None:
    """MkDocs checks anchors with its own rules; the same pages read on GitHub use GitHub's."""
    broken = [line for page in sorted(DOCS.glob("*.md")) for line in _broken_links(page)[0]]
    assert broken == []


def test_everything_the_readme_shows_is_in_the_reference() -> None:
    """The README is a tour of the docs: its code blocks and table rows are all in docs/,
    so the reference is complete without it and the two say the same."""
    readme = (REPO / "README.md").read_text()
    docs = "\n".join(path.read_text() for path in sorted(DOCS.glob("*.md")))
    blocks = _fenced_blocks(readme)
    rows = _table_rows(readme)
    assert len(blocks) >= 5 and len(rows) >= 20
    assert [block for block in blocks if block not in docs] == []
    doc_rows = set(_table_rows(docs))
    assert [row for row in rows if row not in doc_rows] == []


def test_the_readme_stays_a_first_visit() -> None:
    """The two set-up commands CI relies on are there verbatim, and the README is short."""
    readme = (REPO / "README.md").read_text()
    assert ("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/lab run "
            "experiments/caching.toml") in readme
    assert ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
            ".venv/bin/python -m pytest") in readme
    assert len(readme.splitlines()) <= 350


def test_the_readme_experiment_example_is_a_valid_experiment(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    tomls = [block for block in _fenced_blocks(readme) if block.startswith("```toml")]
    assert len(tomls) == 1
    path = tmp_path / "my-cache.toml"
    path.write_text(tomls[0].split("\n", 1)[1].rsplit("```", 1)[0])
    experiment = load_experiment(path)
    assert [v.name for v in experiment.variants] == ["no-cache", "lru"]


def test_catalog_tables_are_what_the_experiment_files_give() -> None:
    stale = catalog_doc.stale_documents(REPO)
    assert stale == [], (f"the experiment catalog in {', '.join(stale)} differs from experiments/*.toml; "
                         f"run: {catalog_doc.COMMAND}")


def test_every_bundled_experiment_has_a_catalog_row_with_its_figures() -> None:
    table = catalog_doc.catalog_table(REPO / "experiments")
    rows = table.splitlines()[2:]
    files = sorted(path.stem for path in (REPO / "experiments").glob("*.toml"))
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == files
    for path in (REPO / "experiments").glob("*.toml"):
        info = load_experiment(path).experiment
        assert info.question and info.measured, f"{path.name}: question and measured are shown in the catalog"
        assert re.search(r"\d", info.measured), f"{path.name}: measured should give the figures"


def _copy_of_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copytree(REPO / "experiments", root / "experiments")
    for name in catalog_doc.DOCUMENTS:
        shutil.copy(REPO / name, root / name)
    return root


def test_a_changed_experiment_file_makes_the_catalog_stale_until_rewritten(tmp_path: Path) -> None:
    root = _copy_of_repo(tmp_path)
    caching = root / "experiments" / "caching.toml"
    text = caching.read_text()
    assert 'measured = "lru 67×' in text
    caching.write_text(text.replace('measured = "lru 67×', 'measured = "lru 70×'))
    assert catalog_doc.stale_documents(root) == list(catalog_doc.DOCUMENTS)
    check = subprocess.run([sys.executable, "-m", "lab.catalog_doc", "--check", "--root", str(root)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 1
    assert f"run: {catalog_doc.COMMAND}" in check.stderr
    write = subprocess.run([sys.executable, "-m", "lab.catalog_doc", "--write", "--root", str(root)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert write.returncode == 0, write.stderr
    assert catalog_doc.stale_documents(root) == []
    for name in catalog_doc.DOCUMENTS:
        assert "| caching |" in (root / name).read_text()
        assert "lru 70× the throughput" in (root / name).read_text()
    # Only the table changed: the rest of each document is as it was.
    before = (REPO / "README.md").read_text()
    after = (root / "README.md").read_text()
    assert before.replace("lru 67×", "lru 70×") == after


def test_variants_cell_names_variants_sweep_and_note(tmp_path: Path) -> None:
    cell = {path.stem: catalog_doc.variants_text(load_experiment(path))
            for path in (REPO / "experiments").glob("*.toml")}
    assert cell["caching"] == "no-cache, lru, redis (a lab-started redis-server)"
    assert cell["usl-demo"] == "scalable, contention, coherency; VUs swept 1 → 64 (7 levels)"
    assert cell["horizontal-scaling-sweep"].startswith("target workers swept 1, 2, 3, 4, 6, 8 (")
    path = tmp_path / "plain.toml"
    path.write_text('[experiment]\ntitle = "t"\n[target]\napp = "targets.testing:app"\n'
                    '[load]\nvus = 1\n[[load.requests]]\npath = "/fast"\n')
    assert catalog_doc.variants_text(load_experiment(path)) == "default"


def test_a_document_without_markers_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    root = _copy_of_repo(tmp_path)
    (root / "experiments" / "caching.toml").write_text(
        (root / "experiments" / "caching.toml").read_text().replace("lru 67×", "lru 70×"))
    readme_before = (root / "README.md").read_text()
    (root / "docs" / "experiments.md").write_text("# The experiment catalog\n\nno markers here\n")
    res = subprocess.run([sys.executable, "-m", "lab.catalog_doc", "--write", "--root", str(root)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"lab.catalog_doc: docs/experiments.md: needs exactly one {catalog_doc.START} and one "
        f"{catalog_doc.END} line"]
    assert (root / "README.md").read_text() == readme_before


@pytest.mark.parametrize("field", ["measured", "variants_note"])
def test_catalog_fields_are_experiment_fields_and_typos_are_still_refused(tmp_path: Path, field: str) -> None:
    base = ('[experiment]\ntitle = "t"\n{line}\n[target]\napp = "targets.testing:app"\n'
            '[load]\nvus = 1\n[[load.requests]]\npath = "/fast"\n')
    good = tmp_path / "good.toml"
    good.write_text(base.format(line=f'{field} = "2× faster"'))
    assert getattr(load_experiment(good).experiment, field) == "2× faster"
    bad = tmp_path / "bad.toml"
    bad.write_text(base.format(line=f'{field}x = "2× faster"'))
    with pytest.raises(Exception, match=f"experiment.{field}x"):
        load_experiment(bad)


def _models_of(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models an annotation names, at any depth (``list[Stage] | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_of(arg)]


def test_every_experiment_field_is_documented() -> None:
    """Each field an experiment file may hold, at any depth, is named in docs/ (in backticks
    or as a TOML key), so a new field cannot land undocumented."""
    docs = "\n".join(path.read_text() for path in sorted(DOCS.glob("*.md")))
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Experiment]
    undocumented = []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            as_code = rf"`[\w.\[\]]*\b{re.escape(key)}\b"
            as_toml_key = rf"(?:^|[{{,#])\s*{re.escape(key)}\s*="
            if not re.search(f"{as_code}|{as_toml_key}", docs, re.M):
                undocumented.append(f"{model.__name__}.{key}")
            todo.extend(_models_of(field.annotation))
    assert len(seen) >= 8  # experiment, target, load, requests, params, stages, sweep, services, ...
    assert undocumented == []


def test_every_page_says_target_gauges_are_read_in_the_middle_of_each_second() -> None:
    """The engine reads a target's gauges in the middle of every interval and stamps them
    so (tests/e2e/test_target_stats.py); every sentence of the README and docs/ that says
    when a gauge is read or sampled says the same, none an interval's end."""
    pages = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    said = []
    for page in pages:
        text = _prose(page.read_text())
        lines = [line for line in text.splitlines() if not line.startswith(("|", "#"))]
        prose = " ".join(" ".join(lines).split())
        for sentence in re.split(r"(?<=[.;:])\s+(?=[A-Z`(-])", prose) + _table_rows(text):
            if "gauge" in sentence and re.search(r"\b(read|sampled|stamped) (at|in|every|with)\b", sentence):
                said.append((page.name, sentence))
    assert len(said) >= 4, said  # the stage table, the target stats page and the schema
    wrong = [(name, s) for name, s in said if "middle" not in s or re.search(r"\bend of each\b", s)]
    assert wrong == [], said
