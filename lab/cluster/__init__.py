"""Generator workers on a Dask ``distributed`` cluster: the same worker code and the same
interval reports as local worker processes, for load beyond one machine.

``address`` parses what the user names (``local:N``, ``tcp://HOST:PORT``); ``local``
starts a cluster of N worker processes on this machine for a run; ``checks`` connects
and says in one line what is wrong with a cluster; ``task`` is what runs on each Dask
worker; ``pool`` is the engine's side, with the interface of ``lab.pool.GeneratorPool``.
Only ``address`` is imported without ``distributed``.
"""
