"""`python -m gateway` is the `switchyard` command."""

from gateway.cli import main

main()
