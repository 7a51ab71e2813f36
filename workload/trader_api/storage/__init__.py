"""Storage: asyncpg repositories, migrations, TimescaleDB policies; Redis helpers."""
