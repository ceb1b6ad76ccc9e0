"""What a run stands up before the load starts: the target (a uvicorn process tree on a free
127.0.0.1 port, its readiness and stats) and its backing services (redis-server, a
throw-away PostgreSQL cluster, downstream apps) and the nginx balancer in front of
replicas, each ended with the run.
"""
