"""``python -m controller.builder``: the entry point of the builder image."""

import sys

from controller.builder.main import main

sys.exit(main())
