"""The Textual front end of the lab: one more listener on the engine's event stream.

``lab.tui`` imports the engine; the engine never imports ``lab.tui`` (nor Textual).
"""
