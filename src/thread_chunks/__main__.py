"""``python -m thread_chunks show PATH``: see :mod:`thread_chunks._cli`."""

import sys

from ._cli import main

sys.exit(main())
