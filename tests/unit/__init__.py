"""Fast tests of pure code: no database, no server, no subprocess."""
