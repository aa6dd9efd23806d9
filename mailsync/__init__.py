"""The IMAP archiver: whole accounts into Maildir, incremental, byte-exact."""
