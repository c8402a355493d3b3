"""The server link: provisioning, the feed mapping and sync runs over the emoncms protocol.

`link.py` talks HTTP to the server (bounded, verified), `store.py` keeps the link, mapping,
mirrors and status on /data, `run.py` is one sync run. The worker runs it
(`hub/worker/sync.py`), the web side shows and changes it (`hub/web/sync.py`).
"""
