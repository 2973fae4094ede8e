import sys

from fairvlm.cli import main

sys.exit(main())
