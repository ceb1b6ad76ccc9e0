"""Analysis of measured runs: summaries, comparisons."""
