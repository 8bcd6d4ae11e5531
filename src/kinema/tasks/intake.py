"""Intake: a waiting task's input image is fetched, checked and kept; then the task joins the queue.

The image goes through the same check as an image of this server at createTask
(`kinema.media.intake.check_image`, in turn: `DecodeSlots`), so a picture is refused with the
same words whichever way it came. The copy kept is the task's own
(`kinema.storage.layout.input_key`): replacing the source later cannot change the task.
"""

from __future__ import annotations

from dataclasses import dataclass

from kinema.domain.clock import Clock
from kinema.domain.errors import InvalidInput
from kinema.domain.task import Task
from kinema.media.intake import DecodeSlots
from kinema.net.fetcher import SafeFetcher
from kinema.storage import layout
from kinema.storage.base import BlobStore
from kinema.storage.own import OwnFiles
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import Claim

FIELD = "input.image_url"


@dataclass(frozen=True, slots=True)
class IntakePorts:
    db: Database
    store: BlobStore
    fetcher: SafeFetcher
    own_files: OwnFiles | None  #: Reads URLs of this server from storage instead of the network.
    clock: Clock
    decodes: DecodeSlots  #: The process's turns at decoding an image.


def fetch_input(ports: IntakePorts, task: Task) -> str | None:
    """Fetch, check and keep the task's input image: its blob key, or None when it has none.

    `InvalidInput` says what is wrong with the URL or the picture, naming the field.
    """
    url = task.input.get("image_url")
    if not isinstance(url, str):
        return None
    data = ports.own_files.read(url, FIELD) if ports.own_files else None
    if data is None:
        data = ports.fetcher.get(url, field=FIELD).data
    try:
        mime_type = ports.decodes.check_image(data)
    except InvalidInput as error:
        raise InvalidInput(f"{FIELD}: {error.message}") from error
    key = layout.input_key(task.account_id, task.id, mime_type)
    ports.store.put_bytes(key, data)
    return key


def queue(ports: IntakePorts, claim: Claim, input_key: str | None) -> bool:
    """The intake is done: the task joins the queue. False if the claim was lost (or the task
    was asked to cancel) meanwhile."""
    return lifecycle.mark_ready(ports.db, claim, input_key, ports.clock())
