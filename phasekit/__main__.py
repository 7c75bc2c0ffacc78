"""``python -m phasekit`` runs the command line (same as the ``phasekit`` script)."""

from .cli import main

raise SystemExit(main())
