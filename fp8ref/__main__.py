import sys

from fp8ref.cli import main

sys.exit(main())
