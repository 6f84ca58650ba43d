"""Plots: reading plot data files (`table`) and drawing them as SVG (`svg`), with no
third-party dependency, so the output is the same bytes on every machine."""
