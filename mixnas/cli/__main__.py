"""``python -m mixnas.cli``: the ``mixnas`` command without its console script (as the tests and benchmarks
run it, with the interpreter they were started with)."""

import sys

from mixnas.cli import main

if __name__ == "__main__":
    sys.exit(main())
