"""The backup service: repositories, backups of snapshots and volumes, restores and verifies (DESIGN §7, §10).

Read `service.py` first: its tables say which message goes to which handler.
"""
