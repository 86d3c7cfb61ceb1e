"""Research on the live engine's own code: backtests on recorded data and their reports."""
