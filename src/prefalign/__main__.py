import sys

from prefalign.cli import main

sys.exit(main())
