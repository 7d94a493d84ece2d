"""The orchestrator: accepts operations (a VM revert, ...), runs their sagas and owns the sagas' timers.

Any number of replicas may run: the saga store (PostgreSQL) decides who does what, one message at a time.
"""
