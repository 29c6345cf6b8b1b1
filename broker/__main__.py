"""`python -m broker ...`: the same command line as `batonmq`."""

import sys

from broker.daemon.cli import main

sys.exit(main())
