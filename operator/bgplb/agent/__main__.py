import sys

from bgplb.agent.main import main

sys.exit(main())
