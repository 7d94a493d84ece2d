"""The snapshot service: volume snapshots and their chains, VM snapshots, snapshot policies and their scheduler.

It owns schema `snapshot`. It learns volumes, pools and VM power states from the storage service's and the
agents' events, asks the agent of a volume's pool to do the data-plane work, and answers saga steps when a saga
sent the command.
"""
