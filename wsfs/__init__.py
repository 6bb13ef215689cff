"""The `wsfs` command: one entry point that dispatches to the server and client subcommands."""
