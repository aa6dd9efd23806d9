"""The web crawler: URL lists and whole sites into WARC, resumable."""
