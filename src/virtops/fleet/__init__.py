"""The fleet: many hosts as one. `select.py` turns a selector (-H) into hosts of the registry and
lab hosts; `gather.py` asks each of them in a thread of its own, with one connection each, and
never waits for one that does not answer past a bounded time; `listings.py` and `actions.py` are
what the faces ask a fleet for. A face renders the answers; a host that failed is an answer too."""
