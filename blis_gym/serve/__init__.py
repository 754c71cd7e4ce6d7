"""``blis serve``: an OpenAI-compatible server whose timing is the simulator's, in real time.

:mod:`.tokens` (prompt text as token ids, filler output), :mod:`.realtime` (the simulation
tied to the wall clock), :mod:`.app` (the HTTP API), :mod:`.plan` (``blis run`` options into
one cluster per server), :mod:`.launch` (uvicorn servers, Ctrl-C, a background-thread runner).
"""
