"""What the bus says about delivery itself: a command that no handler could be reached for."""

from pydantic import Field

from schemas.envelope import Event
from schemas.errors import ErrorInfo
from schemas.registry import message


@message("bus.command.undeliverable")
class CommandUndeliverable(Event):
    """The outbox gave up on a command that no queue takes (a mistyped host or cluster, a service never started):
    it was retried for a bounded time and is now failed, dead-lettered for an operator's look. Its causation id is
    the command's message id."""

    command_type: str = Field(description="The command's wire type.")
    command_routing_key: str = Field(description="The routing key nothing was bound to.")
    error: ErrorInfo = Field(description="Why it is undeliverable.")
