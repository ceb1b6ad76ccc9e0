"""The TUI's screens: experiments, live run, history, compare, help, confirmation."""
