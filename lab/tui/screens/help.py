"""The help screen: every key of every screen, read from the bindings themselves.

Built from the ``BINDINGS`` of the app and of each screen, so a new key shows up here
without anyone remembering to document it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from lab.tui.screens.base import controlled

# Keys whose Textual names read badly in a table.
_KEY_NAMES = {
    "plus": "+", "equals_sign": "=", "minus": "-", "question_mark": "?", "space": "space",
    "escape": "esc", "enter": "enter", "ctrl+q": "ctrl+q", "ctrl+r": "ctrl+r", "ctrl+p": "ctrl+p",
}


def _bindings(bindings: Iterable[BindingType]) -> list[Binding]:
    out = []
    for b in bindings:
        if isinstance(b, Binding):
            out.append(b)
        else:  # a (key, action, description) tuple
            out.append(Binding(*b))
    return out


def key_text(binding: Binding) -> str:
    """The keys of a binding as a reader types them, e.g. ``+ / =``."""
    return " / ".join(_KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


def describe(binding: Binding) -> str:
    """What a binding does, from its action's docstring when it has no description."""
    return binding.description or binding.action.replace("_", " ")


def keys_table(title: str, bindings: Sequence[Binding], doc: dict[str, str]) -> Table:
    """One screen's keys: key, what it does (the action's docstring when there is one)."""
    table = Table(title=title, title_justify="left", title_style="bold", box=None, padding=(0, 1),
                  show_header=False, expand=True)
    table.add_column(no_wrap=True, style="bold", width=8)
    table.add_column(ratio=1)
    for b in bindings:
        table.add_row(key_text(b), doc.get(b.action) or describe(b))
    return table


def _action_docs(cls: type) -> dict[str, str]:
    docs: dict[str, str] = {}
    for name in dir(cls):
        if name.startswith("action_"):
            # The docstring's first paragraph, which may wrap over several lines.
            paragraph = (getattr(cls, name).__doc__ or "").strip().split("\n\n")[0]
            if paragraph:
                docs[name[len("action_"):]] = " ".join(paragraph.split())
    return docs


def help_renderable(sections: Sequence[tuple[str, type, str]], view_only: bool = False) -> RenderableType:
    """Every section's keys: ``(title, class with BINDINGS, one-line hint)``; in a view-only
    lab without the keys that start, stop, change or delete runs."""
    parts: list[RenderableType] = []
    for title, cls, hint in sections:
        bindings = [b for b in _bindings(getattr(cls, "BINDINGS", []))
                    if not (view_only and controlled(cls, b.action))]
        if hint:
            title = f"{title} — {hint}"
        parts.append(keys_table(title, bindings, _action_docs(cls)))
        parts.append(Text(""))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Lists every key; any of escape, ? or q closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, sections: Sequence[tuple[str, type, str]], view_only: bool = False) -> None:
        super().__init__()
        self.sections = list(sections)
        self.view_only = view_only

    def compose(self) -> ComposeResult:
        """A scrolling list of keys, by screen."""
        title = "Keys  (esc closes; ↑/↓ scroll)"
        if self.view_only:
            title = "Keys of this view-only lab: runs start and stop in the presenter's  (esc closes)"
        with Vertical(id="help-dialog"):
            yield Static(title, id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(help_renderable(self.sections, self.view_only), id="help-keys")

    def on_mount(self) -> None:
        """Focus the scrolling body so arrows scroll it."""
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss()
