"""``python -m kogpt2 ...`` (also what ``torchrun -m kogpt2 train ...`` runs)."""

import sys

from kogpt2.cli import main

sys.exit(main())
