"""Errors the bus raises, each a project error class with its retry meaning."""

from schemas.errors import FailedPrecondition, Transient


class Unroutable(FailedPrecondition):
    """No queue is bound for this message: publishing it would lose it."""


class PublishRejected(Transient):
    """The broker refused to take the message (a nack, e.g. a full queue); it may accept it later."""


class BrokerUnavailable(Transient):
    """The broker stayed unreachable for longer than the publish outage bound."""


class ConfirmTimedOut(Transient):
    """The broker took a message but did not confirm it in time (blocked, stalled); it may or may not have it."""


class RequestTimedOut(Transient):
    """No reply arrived within the request's timeout."""


class HandlerTimedOut(Transient):
    """A handler ran past its deadline and was cancelled; its transaction was rolled back, so a retry starts clean."""
