"""Sensors: turn raw traffic into the Zeek-format logs slips reads (see flowmeter)."""

import sys

# NFStream is not packaged by Debian: the .deb ships it in this private folder
# (docs/packaging.md). Appended, so an NFStream installed otherwise comes first.
_PRIVATE_PACKAGES = "/usr/lib/slips/python"
if _PRIVATE_PACKAGES not in sys.path:
    sys.path.append(_PRIVATE_PACKAGES)
