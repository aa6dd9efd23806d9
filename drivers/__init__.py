"""The mode drivers: each maps the tools' effects onto one concurrency primitive."""
