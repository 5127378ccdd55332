"""Load from many machines, one verdict: a coordinator (the CLI process) and remote workers.

The coordinator serves a small HTTP API (:mod:`.coordinator`); each worker (``loadgen worker``,
:mod:`.worker`) asks it for its share of one open-loop schedule and the common start, sends the
schedule's requests k, k+N, k+2N, ... and reports its tally back. Workers are started by a
launcher: local processes (:mod:`.launchers`, tests) or Nomad dispatched jobs (:mod:`.nomad_jobs`).
"""
