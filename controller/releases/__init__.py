"""Releases: the numbered, immutable ledger of what each app runs."""
