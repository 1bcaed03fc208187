"""``python -m crosswatch``: the command line."""

from ._cli import main

raise SystemExit(main())
