"""`strata saga` against a running coordinator on RabbitMQ and PostgreSQL: list, show, act, replay."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest
from typer.testing import CliRunner, Result

from sagas.records import SagaStatus
from sagas.work import saga_id_for
from schemas import Envelope
from services.cli import saga as saga_cli
from services.cli.main import app
from tests.helpers import assert_eventually
from tests.sagas_fixtures import PostgresParticipant, RunPlan, saga_test_messages, test_sagas
from tests.sagas_stack import SagaNode, prepare_database, wait_ended

pytestmark = pytest.mark.integration


@pytest.fixture
async def node(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[SagaNode]:
    await prepare_database(database_url)
    opened = await SagaNode.open(database_url, amqp_url, namespace)
    await opened.run_coordinator()
    yield opened
    await opened.close(delete_namespace=True)


@pytest.fixture
def strata(database_url: str, monkeypatch: pytest.MonkeyPatch) -> "Strata":
    # The test saga and its messages live in registries of their own; the CLI replays against those.
    monkeypatch.setattr(saga_cli, "saga_registry", test_sagas)
    monkeypatch.setattr(saga_cli, "registry", saga_test_messages)
    return Strata(database_url)


class Strata:
    """Runs `strata ...` in a thread (the CLI runs its own event loop)."""

    def __init__(self, database_url: str) -> None:
        self.env = {"STRATA_DATABASE_URL": database_url, "COLUMNS": "200"}

    async def __call__(self, *args: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=self.env)


async def start(node: SagaNode, plan: RunPlan) -> UUID:
    envelope = Envelope.wrap(plan, producer="test")
    await node.bus.publish(envelope)
    return saga_id_for(envelope.message_id)


async def test_an_operator_sees_a_stuck_saga_retries_it_and_replays_it(
    node: SagaNode, strata: Strata, tmp_path: Path
) -> None:
    participant = PostgresParticipant(node.bus)
    participant.plan("do:b", "fail:FAILED_PRECONDITION")
    await node.run_participant(participant)
    saga_id = await start(node, RunPlan(keys=["a", "b"], locks=["vm:7"], pivot_after=0))
    assert await wait_ended(node, [saga_id]) == {saga_id: SagaStatus.STUCK}

    listed = await strata("saga", "list", "--status", "STUCK", "--json")
    assert listed.exit_code == 0, listed.output
    assert [item["saga_id"] for item in json.loads(listed.output)] == [str(saga_id)]
    shown = await strata("saga", "show", str(saga_id))
    assert shown.exit_code == 0, shown.output
    assert "STUCK" in shown.output
    assert "vm:7 → token" in shown.output
    assert "FAILED_PRECONDITION: planned failure of do:b" in shown.output
    assert "holds vm:7" in shown.output  # a stuck saga keeps its locks
    strata.env["COLUMNS"] = "80"  # a terminal's default width: the timeline's table still reads
    short = str(saga_id)[:8]
    row = next(line for line in (await strata("saga", "list")).output.splitlines() if short in line)
    assert str(saga_id) not in row
    assert "STUCK" in row
    assert len(row) <= 80
    assert "STUCK" in (await strata("saga", "show", short)).output  # the short id is taken back
    unknown = await strata("saga", "show", "ffff0000")
    assert unknown.exit_code != 0
    assert "no saga's id starts with 'ffff0000'" in unknown.output
    narrow = await strata("saga", "show", str(saga_id))
    strata.env["COLUMNS"] = "200"
    table = narrow.output[narrow.output.index("#  step") :]  # its header on one line
    assert str(saga_id) not in table  # ids are shortened in it
    assert "sagatest.do" in table

    retried = await strata("saga", "retry", str(saga_id), "--reason", "storage fixed", "--by", "ops")
    assert retried.exit_code == 0, retried.output
    assert "step 4 gets attempt 2" in retried.output
    assert await wait_ended(node, [saga_id]) == {saga_id: SagaStatus.COMPLETED}
    assert participant.effects == ["do:a", "do:b"]

    exported = await strata("saga", "show", str(saga_id), "--json")
    events = json.loads(exported.output)["events"]
    assert {"by": "ops", "reason": "storage fixed", "did": "step 4 gets attempt 2"} in [e["detail"] for e in events]
    replayed = await strata("saga", "replay", str(saga_id))
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.startswith("ok")

    changed = json.loads(exported.output)
    changed["steps"][1]["command"]["type"] = "sagatest.other"  # as if the code had sent another command then
    journal = tmp_path / "saga.json"
    journal.write_text(json.dumps(changed))
    diverged = await strata("saga", "replay", "--file", str(journal))
    assert diverged.exit_code == 1
    assert "DIVERGED" in diverged.output
    assert "replay diverged at step 2" in diverged.output


async def test_operator_actions_refuse_what_does_not_apply_and_change_nothing(node: SagaNode, strata: Strata) -> None:
    participant = PostgresParticipant(node.bus)
    await node.run_participant(participant)
    saga_id = await start(node, RunPlan(keys=["a"]))
    await wait_ended(node, [saga_id])
    refused = await strata("saga", "abort", str(saga_id))
    assert refused.exit_code == 1
    assert "cannot abort a COMPLETED saga" in refused.output
    unknown = await strata("saga", "retry", "0190f0f0-0000-7000-8000-000000000000")
    assert unknown.exit_code == 1
    assert "no saga" in unknown.output
    bad = await strata("saga", "show", "not-a-uuid")
    assert bad.exit_code == 2
    instance = await node.status(saga_id)
    assert instance is not None
    assert instance.status is SagaStatus.COMPLETED


async def test_an_operator_compensates_a_running_saga(node: SagaNode, strata: Strata) -> None:
    participant = PostgresParticipant(node.bus)
    participant.plan("do:b", "late")
    await node.run_participant(participant)
    saga_id = await start(node, RunPlan(keys=["a", "b", "c"], pivot_after=1))
    await assert_eventually(lambda: len(participant.held) == 1, what="step 2 in flight")
    compensated = await strata("saga", "compensate", str(saga_id), "--reason", "customer cancelled")
    assert compensated.exit_code == 0, compensated.output
    await participant.release_late()
    assert await wait_ended(node, [saga_id]) == {saga_id: SagaStatus.COMPENSATED}
    assert participant.effects == ["do:a", "do:b", "undo:b", "undo:a"]
