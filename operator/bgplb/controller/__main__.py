import sys

from bgplb.controller.main import main

sys.exit(main())
