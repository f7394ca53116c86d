"""`python -m anatomica` is the `anatomica` command."""

from anatomica.cli import main

main()
