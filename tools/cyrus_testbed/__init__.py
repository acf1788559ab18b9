"""Test support: Debian machines, their init systems, the Cyrus server on them, clients,
and what the tests compare (fingerprints, corpora, the behaviour table)."""
