"""The CloudStack bridge: CloudStack's own event bus in, strata commands out, outcomes back in CloudStack's format.

Read `mapping.py` first (which CloudStack event becomes which command), then `inbound.py` (one CloudStack message,
effectively once) and `outcomes.py` (strata's outcomes turned into CloudStack's answers).
"""
