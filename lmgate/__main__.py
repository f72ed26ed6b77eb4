import sys

from lmgate.cli import main

sys.exit(main())
