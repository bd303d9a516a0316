"""`python -m avatar_batch` runs the CLI."""

from avatar_batch.cli import main

main()
