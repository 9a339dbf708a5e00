"""python -m segbridge: the same as the segbridge command."""

from .cli import main

main()
