"""Build, install and test the Cyrus IMAP Debian packages in real Debian containers."""
