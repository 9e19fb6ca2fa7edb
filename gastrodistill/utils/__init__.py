"""Small shared helpers: atomic files, seeds, run records, loggers, privacy filters."""
