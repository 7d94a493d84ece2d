"""The storage and snapshot domain as pure logic: state machines, the allocator, snapshot policies and chains.

Nothing here does I/O or reads the clock: a service handler loads the objects, asks these functions what to do,
records the outcome and emits the events ("load, decide, record, emit").
"""
