"""specfleet: keeps data products evergreen (one installed namespace)."""
