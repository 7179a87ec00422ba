import sys

from edge_monitor.cli import main

sys.exit(main())
