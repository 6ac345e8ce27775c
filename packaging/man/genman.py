#!/usr/bin/python3
"""Write the man pages slipsd(8), slipsctl(8) and slips.conf(5) as roff, from the code.

    PYTHONPATH=. python3 packaging/man/genman.py OUTDIR

The option lists come from the programs themselves (slipsctl's click commands,
slipsd's argparse help) and every configuration key from ``slipsd.config.SCHEMA``,
so the pages cannot fall behind the code; the prose around them is written here.
Needs only the standard library and typer/click (Debian 12's python3-typer):
no pandoc. The date is $SOURCE_DATE_EPOCH (set by dpkg-buildpackage from
debian/changelog) so that builds are reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from _slipsctl_page import slipsctl_page
from _slipsd_pages import slips_conf_page, slipsd_page

__all__ = ["main", "slips_conf_page", "slipsctl_page", "slipsd_page"]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    pages: dict[str, Any] = {"slipsd.8": slipsd_page, "slipsctl.8": slipsctl_page,
                             "slips.conf.5": slips_conf_page}
    for name, make in pages.items():
        (out / name).write_text(make(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
