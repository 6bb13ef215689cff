import sys

from wsfs.cli import main

sys.exit(main())
