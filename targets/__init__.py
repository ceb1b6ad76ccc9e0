"""Sample services (ASGI apps) that exhibit scaling effects.

Targets import nothing from ``lab``: each is an ordinary ASGI app anyone could run with
``uvicorn targets.NAME:app``.
"""
