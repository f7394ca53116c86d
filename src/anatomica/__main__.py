"""`python -m anatomica` is the `anatomica` command."""

from anatomica.cli.app import main

main()
