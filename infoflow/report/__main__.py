"""``python -m infoflow.report SWEEP_DIR``."""

import sys

from infoflow.report._cli import main

sys.exit(main())
