"""The in-process wake-up: a loop waits for its own kind of work, or for a call to everyone."""

from __future__ import annotations

import threading

from kinema.worker.signals import Wakeup


def test_a_notice_for_one_kind_leaves_the_others_asleep() -> None:
    wakeup = Wakeup()
    intake, generate = wakeup.generation("intake"), wakeup.generation("generate")
    wakeup.notify("generate")
    assert wakeup.wait(0, intake, "intake") == intake
    assert wakeup.wait(0, generate, "generate") != generate


def test_a_notice_naming_no_kind_wakes_every_kind() -> None:
    wakeup = Wakeup()
    seen = {kind: wakeup.generation(kind) for kind in ("intake", "generate")}
    wakeup.notify()
    assert all(wakeup.wait(0, seen[kind], kind) != seen[kind] for kind in seen)


def test_a_waiting_loop_is_woken_by_its_kind() -> None:
    wakeup = Wakeup()
    seen = wakeup.generation("generate")
    answered: list[int] = []
    waiter = threading.Thread(target=lambda: answered.append(wakeup.wait(60, seen, "generate")))
    waiter.start()
    wakeup.notify("intake")
    wakeup.notify("generate")
    waiter.join(30)
    assert not waiter.is_alive()
    assert answered
    assert answered[0] != seen
