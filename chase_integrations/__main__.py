"""``python -m chase_integrations`` runs the ``chase`` command line."""

import sys

from chase_integrations.cli import main

sys.exit(main())
