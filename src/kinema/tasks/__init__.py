"""The task lifecycle: create, claim, heartbeat, finish, cancel and reap, on the task rows."""
