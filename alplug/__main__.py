"""`python -m alplug` is the `alplug` command."""
from alplug.cli import main

main()
