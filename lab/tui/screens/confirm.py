"""A yes/no question in a modal dialog (used before deleting a run)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks a question; dismisses with True (y) or False (n / escape).

    Args:
        question: what to confirm, one or two lines.
        yes_label: the text of the button that confirms.
        warning: a consequence easy to miss (e.g. a sweep's fit recomputed), shown under the
            question in the warning colour; None for none.
    """

    DEFAULT_CSS = """
    #confirm-warning {
        color: $warning;
        margin-bottom: 1;
    }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes_label: str = "Yes", warning: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes_label
        self.warning = warning

    def compose(self) -> ComposeResult:
        """The question and two buttons; No has the focus, so Enter is the safe answer."""
        with Vertical(id="confirm-dialog"):
            yield Static(self.question, id="confirm-question")
            if self.warning:
                yield Static(f"⚠ {self.warning}", id="confirm-warning", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes_label} (y)", variant="error", id="confirm-yes")
                yield Button("No (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        """Focus the safe answer."""
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        """Answer the question."""
        self.dismiss(yes)
