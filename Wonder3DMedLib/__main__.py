"""``python -m Wonder3DMedLib`` runs the ``wonder3dmed`` command line."""

import sys

from Wonder3DMedLib.cli import main

sys.exit(main())
