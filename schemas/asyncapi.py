"""AsyncAPI 3.0 export of the registry: one channel per message type on its exchange, payloads from pydantic."""

from typing import Any

from pydantic.json_schema import models_json_schema

from schemas.envelope import Command, Message
from schemas.registry import MessageRegistry, registry

# The JSON Schema of a document is untyped JSON by nature.
JsonDoc = dict[str, Any]

_ENVELOPE_HEADERS: JsonDoc = {
    "type": "object",
    "properties": {
        "version": {"type": "integer", "description": "Schema version of the payload."},
        "causation_id": {"type": "string", "format": "uuid", "description": "The message that caused this one."},
        "saga_id": {"type": "string", "format": "uuid", "description": "The saga that sent it, if any."},
        "step": {"type": "integer", "description": "The saga step that sent it, if any."},
        "fencing_token": {"type": "integer", "description": "Lock fencing token carried by saga commands."},
    },
}


def _key(model: type[Message]) -> str:
    return model.message_type.replace(".", "_") + f"_v{model.message_version}"


def asyncapi_document(*, namespace: str = "strata", messages: MessageRegistry = registry) -> JsonDoc:
    """Return an AsyncAPI 3.0 document: channels are (exchange, routing key), operations say who sends."""
    models = list(messages)
    _, schema = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    component_schemas: JsonDoc = dict(schema.get("$defs", {}))
    channels: JsonDoc = {}
    operations: JsonDoc = {}
    component_messages: JsonDoc = {}
    for model in models:
        key = _key(model)
        is_command = issubclass(model, Command)
        exchange = f"{namespace}.{'commands' if is_command else 'events'}"
        component_messages[key] = {
            "name": model.message_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else model.__name__,
            "contentType": "application/json",
            "headers": _ENVELOPE_HEADERS,
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            "correlationId": {"location": "$message.header#/correlation_id"},
        }
        channels[key] = {
            "address": model.message_type,
            "title": f"{exchange} / {model.message_type}",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False},
                    "bindingVersion": "0.3.0",
                }
            },
        }
        operations[f"{'send' if is_command else 'publish'}_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "strata",
            "version": "0.1.0",
            "description": "Commands and events of strata's services on RabbitMQ.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": component_schemas, "messages": component_messages},
    }
