"""``python -m blis_gym`` is the ``blis`` command."""

from .cli.app import main

main()
