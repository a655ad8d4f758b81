import sys

from mqlrec.train.cli import main

sys.exit(main())
