import sys

from copytrade.cli import main

sys.exit(main())
