# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in for ansible-test's downloaded get-pip bootstrap, for machines that reach PyPI but not
ci-files.testing.ansible.com: seed pip with ensurepip, then install what ansible-test asked for
(the exact pip version and packages) from the package index."""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip points PIP_CONFIG_FILE at /dev/null in this process; the real install needs the config.
os.environ.pop("PIP_CONFIG_FILE", None)
requested = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *requested])
