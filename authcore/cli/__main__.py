"""`python -m authcore.cli`."""

from authcore.cli import main

raise SystemExit(main())
