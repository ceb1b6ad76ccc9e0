"""The Experiments screen: pick an experiment and a variant, read what to look for, run."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from lab.errors import LabError
from lab.session import PreparedRuns, prepare
from lab.tui.catalog import ExperimentEntry, discover
from lab.tui.messages import ExperimentsLoaded, OpenHistory, StartRuns
from lab.tui.screens.base import LabScreen, controls


def _entry_prompt(entry: ExperimentEntry) -> Text:
    """Two lines per experiment: its name, then its title or its error."""
    text = Text(entry.name, style="bold")
    if entry.valid:
        text.append(f"  {len(entry.variants)} variant{'s' if len(entry.variants) != 1 else ''}",
                    style="dim")
        text.append(f"\n{entry.title}")
    else:
        text.append("  invalid", style="bold red")
        text.append(f"\n{entry.error}", style="italic")
    return text


def _details(entry: ExperimentEntry) -> RenderableType:
    """The right pane: title, question, target, load, what to look for, variants and
    the description."""
    if not entry.valid:
        return Group(
            Text(entry.name, style="bold"),
            Text(""),
            Text("This experiment file is invalid and cannot run:", style="bold"),
            Text(str(entry.error), style="red"),
            Text(""),
            Text("Fix the file, then press R to read the folder again.", style="italic"),
        )
    facts = Table.grid(padding=(0, 1))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    if entry.question:
        facts.add_row("question", entry.question)
    first = entry.variants[0]
    targets = {v.target for v in entry.variants}
    loads = {v.load for v in entry.variants}
    facts.add_row("target", first.target if len(targets) == 1 else "differs per variant (below)")
    facts.add_row("load", first.load if len(loads) == 1 else "differs per variant (below)")
    variants = Table.grid(padding=(0, 1))
    variants.add_column(style="bold", no_wrap=True)
    variants.add_column()
    for v in entry.variants:
        lines = [v.description] if v.description else []
        if len(targets) > 1:
            lines.append(v.target)
        if len(loads) > 1:
            lines.append(v.load)
        variants.add_row(v.name, "\n".join(lines) or "")
    parts: list[RenderableType] = [Text(entry.title, style="bold"), facts]
    # What to look for comes right under the question, before the variants and the long
    # description, so it is on screen without scrolling (even at 80x24, its start is).
    if entry.look_for:
        parts += [Text(""), Text("What to look for", style="bold underline"), Text(entry.look_for)]
    parts += [Text(""), Text("Variants", style="bold underline"), variants]
    if entry.description:
        heading = "About" if entry.look_for else "What to look for"
        parts += [Text(""), Text(heading, style="bold underline"), Text(entry.description)]
    return Group(*parts)


class ExperimentsScreen(LabScreen[None]):
    """Lists ``experiments/*.toml`` (valid or not) with their facts; runs them."""

    BINDINGS = [
        Binding("a", "run_all", "Run all"),
        Binding("r", "run_variant", "Run variant"),
        Binding("v", "next_variant", "Variant"),
        Binding("h", "history", "History"),
        Binding("R", "reload", "Reload", show=False),
    ]
    HELP = ("↑/↓ pick an experiment, v (or tab to the list) a variant; enter on an experiment "
            "moves to its variants, enter on a variant runs it.")
    HELP_VIEW_ONLY = ("↑/↓ pick an experiment, v (or tab to the list) a variant, to read what "
                      "it asks and what to look for; h shows the runs the presenter made.")

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[ExperimentEntry] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        """A list of experiments on the left, details and variants on the right."""
        yield Header()
        with Horizontal(id="experiments-body"):
            yield OptionList(id="experiment-list")
            with Vertical(id="experiment-side"):
                with VerticalScroll(id="experiment-details"):
                    yield Static("Reading the experiments folder…", id="experiment-text")
                yield OptionList(id="variant-list")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        """Read the experiments folder in a thread."""
        self.sub_title = "Experiments"
        self.query_one("#experiment-list", OptionList).border_title = "Experiments"
        self.query_one("#variant-list", OptionList).border_title = "Variants"
        self.load_catalog()

    @work(thread=True, exclusive=True, group="catalog", exit_on_error=False, name="reading experiments")
    def load_catalog(self) -> None:
        """Read and validate every experiment file (a thread: pydantic and file IO)."""
        self.post_message(ExperimentsLoaded(discover(self.lab.experiments_dir)))

    @on(ExperimentsLoaded)
    def _show_entries(self, message: ExperimentsLoaded) -> None:
        self.entries = message.entries
        self.loaded = True
        listing = self.query_one("#experiment-list", OptionList)
        listing.clear_options()
        listing.add_options([Option(_entry_prompt(e), id=e.name) for e in self.entries])
        if self.entries:
            listing.highlighted = 0
            self._show_details(self.entries[0])
        else:
            folder = self.lab.experiments_dir
            self.query_one("#experiment-text", Static).update(
                Text(f"No experiment files (*.toml) in {folder}/. Start the lab with "
                     "--experiments DIR to use another folder.", style="italic"))
            self.query_one("#variant-list", OptionList).clear_options()
        listing.focus()

    @property
    def current(self) -> ExperimentEntry | None:
        """The highlighted experiment."""
        index = self.query_one("#experiment-list", OptionList).highlighted
        if index is None or not 0 <= index < len(self.entries):
            return None
        return self.entries[index]

    @on(OptionList.OptionHighlighted, "#experiment-list")
    def _experiment_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if 0 <= event.option_index < len(self.entries):
            self._show_details(self.entries[event.option_index])

    def _show_details(self, entry: ExperimentEntry) -> None:
        self.query_one("#experiment-text", Static).update(_details(entry))
        self.query_one("#experiment-details", VerticalScroll).scroll_home(animate=False)
        variants = self.query_one("#variant-list", OptionList)
        variants.clear_options()
        variants.display = entry.valid
        if entry.valid:
            variants.add_options([Option(v.name, id=v.name) for v in entry.variants])
            variants.highlighted = 0

    @on(OptionList.OptionSelected, "#variant-list")
    def _variant_selected(self) -> None:
        self.action_run_variant()

    @on(OptionList.OptionSelected, "#experiment-list")
    def _experiment_selected(self) -> None:
        # Enter on an experiment moves on to choosing its variant.
        if self.current is not None and self.current.valid:
            self.query_one("#variant-list", OptionList).focus()

    def _prepare(self, variant: str | None) -> PreparedRuns | None:
        entry = self.current
        if entry is None:
            return None
        if entry.experiment is None:
            self.notify(f"{entry.name} is invalid: {entry.error}", severity="error")
            return None
        try:
            # As `lab run` prepares them: a mistake is a notification here rather than
            # a failed run stored in the history.
            return prepare(entry.experiment, variants=[variant] if variant else None)
        except LabError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return None

    @controls("start runs")
    def action_run_all(self) -> None:
        """Run every variant of the highlighted experiment in turn."""
        prepared = self._prepare(None)
        if prepared is not None:
            self.post_message(StartRuns(prepared))

    @controls("start runs")
    def action_run_variant(self) -> None:
        """Run only the highlighted variant."""
        variants = self.query_one("#variant-list", OptionList)
        if variants.highlighted is None or variants.option_count == 0:
            self.action_run_all()
            return
        option = variants.get_option_at_index(variants.highlighted)
        prepared = self._prepare(option.id)
        if prepared is not None:
            self.post_message(StartRuns(prepared))

    def action_next_variant(self) -> None:
        """Highlight the next variant (wrapping round)."""
        variants = self.query_one("#variant-list", OptionList)
        if variants.option_count:
            current = variants.highlighted or 0
            variants.highlighted = (current + 1) % variants.option_count

    def action_history(self) -> None:
        """Open the stored runs."""
        self.post_message(OpenHistory())

    def action_reload(self) -> None:
        """Read the experiments folder again (after editing a file)."""
        self.load_catalog()
