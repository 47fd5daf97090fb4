import sys

from koembed.cli import main

sys.exit(main())
