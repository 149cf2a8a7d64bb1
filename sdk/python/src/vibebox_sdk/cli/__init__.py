"""The `vibebox` command line: sandboxes, files, git, commands and shells from a terminal.

Built on the SDK only (`vibebox_sdk.VibeBox`); the entry point is `vibebox_sdk.cli.main:run`.
See docs/cli.md.
"""
