import sys

from serve.mms_plugins.build import main

sys.exit(main())
