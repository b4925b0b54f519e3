"""``python -m mobile2dslr`` is the ``mobile2dslr`` console script."""

from .cli import main

main()
