"""``python -m vprsnn_ros.cli``: the ``vprsnn`` command."""

import sys

from vprsnn_ros.cli import main

sys.exit(main())
