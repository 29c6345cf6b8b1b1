"""`python -m broker ...`: the same command line as `batonmq`."""

import sys

from broker.cli import main

sys.exit(main())
