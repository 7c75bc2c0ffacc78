"""``python -m phasekit`` runs the command line (same as the ``phasekit`` script)."""

from .cli import console

if __name__ == "__main__":
    raise SystemExit(console())
