import sys

from loopsync.cli import main

sys.exit(main())
