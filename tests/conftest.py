"""Root of the test tree: its presence puts tests/ on sys.path, so folders share `_pg_support`."""
