"""The command line: ``anatomica.cli.app`` assembles the commands defined in the other modules here."""
