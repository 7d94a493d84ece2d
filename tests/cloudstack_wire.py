"""Messages built as CloudStack's RabbitMQEventBus builds them, for the bridge's tests (and its bench).

Written from CloudStack's sources, not from the bridge's parser, so that the tests check one against the other:
- `createRoutingKey`: `source.category.type.resourceType.resourceUuid`, each part with '.' replaced by '-', an
  empty or null part replaced by '*'.
- `Event.setDescription(map)`: `new Gson().toJson(map)` of a HashMap: no particular key order (shuffled here, every
  message anew), null values left out, HTML-safe escapes (`<`, `>`, `&`, `=`, `'` as `\\u003c`...).
- `ActionEventUtils.publishOnEventBus`: `status`, `event`, `entity`, `entityuuid`, `user`, `account`, the
  first-class entities touched (`"Volume": uuid`), `description`, `eventDateTime` as `yyyy-MM-dd HH:mm:ss Z`.
- the state listeners: `resource`, `id`, `old-state`, `new-state`, `eventDateTime`, sent before and after the
  transition.
- `basicPublish(exchange, key, PERSISTENT_TEXT_PLAIN, body)` on a durable topic exchange.
"""

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import aio_pika

MANAGEMENT_SERVER = "management-server"
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "=": "\\u003d", "'": "\\u0027"}


def routing_key(
    source: str | None, category: str | None, event_type: str | None, resource: str | None, uuid_: str | None
) -> str:
    """CloudStack's `createRoutingKey`."""
    return ".".join(
        "*" if not part else part.replace(".", "-") for part in (source, category, event_type, resource, uuid_)
    )


def gson(fields: dict[str, str | None], *, shuffle: random.Random | None = None) -> bytes:
    """`new Gson().toJson(hashMap)`: nulls omitted, keys in a random order, HTML-safe escapes."""
    items = [(key, value) for key, value in fields.items() if value is not None]
    (shuffle or random.Random()).shuffle(items)
    text = json.dumps(dict(items), separators=(",", ":"), ensure_ascii=False)
    for character, escape in _ESCAPES.items():
        text = text.replace(character, escape)
    return text.encode()


def cloudstack_date(moment: datetime | None = None) -> str:
    """`new SimpleDateFormat("yyyy-MM-dd HH:mm:ss Z").format(date)`."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S %z")


@dataclass(frozen=True)
class Message:
    """One message as CloudStack would publish it."""

    routing_key: str
    body: bytes


def action_event(  # CloudStack's fields, each a keyword
    event: str,
    status: str,
    *,
    entity: str,
    entity_uuid: UUID,
    entities: dict[str, UUID] | None = None,
    description: str | None = None,
    java_class: str | None = None,
    user: UUID | None = None,
    account: UUID | None = None,
    moment: datetime | None = None,
) -> Message:
    """An ActionEvent; `java_class` (`com.cloud.storage.Volume`) as 4.17 and older name the entity."""
    name = java_class or entity
    fields: dict[str, str | None] = {
        "status": status,
        "event": event,
        "entity": name,
        "entityuuid": str(entity_uuid),
        "user": str(user or uuid.uuid4()),
        "account": str(account or uuid.uuid4()),
        "project": None,
        "description": description if description is not None else f"{status.lower()} {event.lower()}",
        "eventDateTime": cloudstack_date(moment),
    }
    for key, value in (entities or {}).items():
        fields[key] = str(value)
    return Message(routing_key(MANAGEMENT_SERVER, "ActionEvent", event, name, str(entity_uuid)), gson(fields))


def resource_state_event(
    resource: str, resource_id: UUID, old_state: str, new_state: str, *, event: str, moment: datetime | None = None
) -> Message:
    """A ResourceStateEvent (CloudStack sends the same one before and after the transition)."""
    fields: dict[str, str | None] = {
        "resource": resource,
        "id": str(resource_id),
        "old-state": old_state,
        "new-state": new_state,
        "eventDateTime": cloudstack_date(moment),
    }
    return Message(
        routing_key(MANAGEMENT_SERVER, "ResourceStateEvent", event, resource, str(resource_id)), gson(fields)
    )


async def declare_exchange(channel: aio_pika.abc.AbstractChannel, name: str) -> aio_pika.abc.AbstractExchange:
    """CloudStack's exchange: durable, topic."""
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def publish(exchange: aio_pika.abc.AbstractExchange, message: Message) -> None:
    """`basicPublish(exchange, key, MessageProperties.PERSISTENT_TEXT_PLAIN, body)`."""
    await exchange.publish(
        aio_pika.Message(message.body, content_type="text/plain", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=message.routing_key,
    )


@dataclass(frozen=True)
class Parsed:
    """A message read back with CloudStack's rules: the key's five words and the body's map of strings."""

    source: str
    category: str
    event_type: str
    resource: str
    resource_uuid: str
    fields: dict[str, str]

    @property
    def failed(self) -> bool:
        """A Completed event that reports a failure (its description says "Error while ...")."""
        return self.fields.get("status") == "Completed" and self.fields.get("description", "").startswith("Error while")

    @property
    def moment(self) -> datetime:
        """Its eventDateTime."""
        return datetime.strptime(self.fields["eventDateTime"], "%Y-%m-%d %H:%M:%S %z")


def parse(key: str, body: bytes) -> Parsed:
    """Read a message as a CloudStack event subscriber does: split the key, `Gson.fromJson(body, Map)`."""
    words = key.split(".")
    assert len(words) == 5, f"not a CloudStack routing key: {key!r}"
    fields = json.loads(body)
    assert isinstance(fields, dict), body
    assert all(isinstance(value, str) for value in fields.values()), body
    source, category, event_type, resource, resource_uuid = words
    return Parsed(source, category, event_type, resource, resource_uuid, fields)
