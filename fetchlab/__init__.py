"""The programs: the crawler and mailsync command lines, their settings file, the bench."""
