"""``trader-backup``: back up, restore and verify a bot's PostgreSQL database and Redis.

Run by the operator's CronJobs and Jobs in the workload image; every run prints
one JSON line (the operator reads it) and exits non-zero on any failure.
"""
