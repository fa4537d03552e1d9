"""``python -m mirror``: the command line (``mirror.cli``)."""

import sys

from mirror.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
