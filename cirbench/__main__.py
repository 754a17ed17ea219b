"""``python -m cirbench``: the same command line as the ``cirbench`` console script.

It exists so the CLI runs from a checkout without installing the script.
"""

import sys

from cirbench.cli import main

sys.exit(main())
