"""slipsctl: the command-line client of slipsd (shares only ``slipsd.protocol`` with it)."""
