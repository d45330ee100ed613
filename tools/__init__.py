"""Developer tools of thread-chunks; not part of the library."""
