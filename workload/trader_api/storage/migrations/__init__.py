"""Versioned SQL migrations, applied in order by ``trader_api.storage.migrate``.

NB: a file is never edited once released (its checksum is recorded); change
the schema with a new, higher-numbered file.
"""
