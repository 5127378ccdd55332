"""``loadgen serve``: an HTTP API over the canary core (loadgen.canary), for controllers that call
rather than run a command: Argo Rollouts' Web provider polls a run, Flagger's webhooks ask a gate.

- :mod:`loadgen.serve.body` turns a posted JSON body into the options `loadgen canary` would build
  from the same values (parsed by that command's own click parameters, checked by the same
  functions), refusing what a client may not choose on a server (file paths, the server's Consul);
- :mod:`loadgen.serve.runs` runs each canary in a worker thread, bounded, cancellable;
- :mod:`loadgen.serve.gate` answers a Flagger webhook with the verdict as a status code;
- :mod:`loadgen.serve.app` is the aiohttp application (auth, limits, routes);
- :mod:`loadgen.serve.listen` is where it may listen, and with what (token, TLS).
"""
