"""Stage 4, compare: the leaderboard and the static HTML report read from the results stores of built datasets.

leaderboard (tables) -> plots (PNG figures) -> report (index.html with crops).
"""
