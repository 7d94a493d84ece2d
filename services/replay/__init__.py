"""The event-replay tool (`strata replay`): select from the journal, show an operation as a timeline, a causal
tree and a sequence diagram, export and import a selection, replay it in a sandbox against the current code and
diff the outcome, and re-drive selected messages into the live system.

It reads the journal only (DESIGN §10): the bus journal for messages, the saga store for what sagas made of them.
"""
