# SPDX-License-Identifier: GPL-3.0-or-later
"""Every Python file of the repository says its license first: `# SPDX-License-Identifier:
GPL-3.0-or-later` as the first line, after the shebang and the coding line if there are any."""

from __future__ import annotations

import re
import subprocess

from collection_fixtures import REPO

SPDX = "# SPDX-License-Identifier: GPL-3.0-or-later"
# PEP 263: a coding declaration is a comment on line 1 or 2 matching this.
CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")


def python_files() -> list[str]:
    """Tracked .py files, and new ones git would track (not ignored), that are on disk."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py"],
                         cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
    return sorted({p for p in out.split("\0") if p and (REPO / p).is_file()})


def header_lacks_spdx(path: str) -> bool:
    lines = (REPO / path).read_text(encoding="utf-8", errors="replace").splitlines()[:3]
    i = 1 if lines and lines[0].startswith("#!") else 0
    if len(lines) > i and i <= 1 and CODING.match(lines[i]):
        i += 1
    return len(lines) <= i or lines[i] != SPDX


def test_every_python_file_starts_with_the_spdx_identifier():
    files = python_files()
    assert len(files) > 50, files  # the repository's own modules, plugins, lab and tests
    lacking = [p for p in files if header_lacks_spdx(p)]
    assert not lacking, f"no '{SPDX}' line at the top (after any shebang/coding line): {lacking}"
