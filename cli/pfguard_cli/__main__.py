# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m pfguard_cli`, the same as the `pfguard` command."""

import sys

from pfguard_cli.main import main

sys.exit(main())
