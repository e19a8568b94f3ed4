"""Over-the-air model updates on the device: signed bundles, staging, self-test, atomic swap,
health window, commit or roll back (see `edge.ota.agent` for the state machine).

    manifest.py   bundle manifest and signature file; k-of-n Ed25519 verification
    download.py   HTTP(S) GET with Range resume, streaming sha256, disk and size checks
    store.py      on-disk layout (bundles/<version>, current, previous), the state file
    selftest.py   golden vectors: codes and segments must match exactly
    agent.py      desired -> download -> verify -> version rule -> prepare -> self-test -> swap
                  -> restart pipeline -> health window -> commit (or roll back, deny-list)
    messages.py   laps.ota-desired/1 and laps.ota-status/1
"""
