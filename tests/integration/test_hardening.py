"""What nobody, with or without a key, can do to the service: each test is a way it once broke."""

from __future__ import annotations

import pytest
from tests.conftest import MakeSettings
from tests.support.service import running_app

from kinema.accounts import credits, keys
from kinema.domain.accounts import MAX_BALANCE
from kinema.domain.errors import InvalidInput
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask, Stage

ADMIN_TOKEN = "a-very-long-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize("amount", [10**30, -(10**30), MAX_BALANCE + 1, 2**63 - 1])
def test_a_grant_beyond_the_bound_is_refused_with_words(make_settings: MakeSettings, amount: int) -> None:
    with running_app(make_settings(admin_token=ADMIN_TOKEN)) as service:
        answer = service.client.post(
            "/api/v1/admin/credits", json={"account": service.account_id, "amount": amount}, headers=ADMIN
        )
        assert answer.status_code == 200
        assert answer.json()["code"] == 422
        assert "amount" in answer.json()["msg"]
        assert service.api.balance() == 1000


def test_the_balance_never_passes_its_bound_and_every_grant_moves_it(db: Database) -> None:
    with db.write() as connection:
        account_id = keys.open_account(connection, "rich", 0, 1).record.account_id
        assert credits.grant(connection, account_id, MAX_BALANCE, 2) == MAX_BALANCE
    with db.write() as connection, pytest.raises(InvalidInput, match="at most"):
        credits.grant(connection, account_id, 1, 3)
    with db.write() as connection, pytest.raises(InvalidInput, match="between"):
        credits.grant(connection, account_id, -(2**63), 3)
    with db.read() as connection:
        balance = credits.balance(connection, account_id)
        assert balance == MAX_BALANCE
        assert isinstance(balance, int)
        assert credits.ledger_sum(connection, account_id) == balance


def test_a_list_filtered_by_state_means_the_state_shown(make_settings: MakeSettings) -> None:
    with running_app(make_settings(max_running_per_account=1, workers=0)) as service:
        db = Database(service.settings.database_url)
        with db.write() as connection:
            made = [
                lifecycle.create_task(
                    connection,
                    service.account_id,
                    NewTask("m", "{}", {"prompt": "p"}, None, 0, True),
                    1,
                    10**9,
                ).id
                for _ in range(2)
            ]
        claim = lifecycle.claim_next(db, Stage.GENERATE, "w", 2, 60_000, 1)
        db.dispose()
        assert claim is not None
        held = next(task_id for task_id in made if task_id != claim.task.id)

        def listed(state: str) -> list[tuple[str, str]]:
            data = service.api.get("/api/v1/jobs/list", state=state)["data"]
            return [(task["taskId"], task["state"]) for task in data["tasks"]]

        assert listed("waiting") == [(held, "waiting")]
        assert listed("queuing") == []
        assert listed("generating") == [(claim.task.id, "generating")]
        assert service.api.get("/api/v1/jobs/recordInfo", taskId=held)["data"]["state"] == "waiting"
