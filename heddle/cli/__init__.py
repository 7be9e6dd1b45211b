"""Command-line interface (thin: parse, call one package function, render)."""
