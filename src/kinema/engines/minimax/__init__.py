"""The minimax engine: the real Hailuo models, generated on MiniMax's servers through their API.

- `engine`: the job flow. One generation is one upstream task. It is submitted once, and its id
  is saved on the Kinema task at once (`GenerationJob.save_state`), so a worker that restarts
  after a crash resumes polling the same upstream task instead of paying for a second one. The
  task is polled every ``poll_s`` until it ends; the video is then downloaded from MiniMax's CDN,
  and its first and last frames are read from it (`kinema.media.frames`).
- `client`: MiniMax's HTTP API. Every submission and poll first takes a turn on the configured
  rate gate, which every worker shares through the database, so that all of them together stay
  under MiniMax's limit (5 video requests a minute by default). Network failures, HTTP 5xx and
  MiniMax's own transient errors are retried with exponential backoff until the task is
  canceled or runs past its deadline, both of which `should_cancel` reports.
- `codes`: answers carry ``base_resp.status_code``; `codes.refusal` turns each code into the
  error the worker reports (its failCode).
- `config`: what the settings give the engine, the clock and the sleeper among them: every wait
  goes through the sleeper, so tests wait for nothing.

The registry loads `engine.MinimaxEngine` by the name ``minimax``.
"""
