"""The one-command local stack: real PostgreSQL, Redis and Kafka from PyPI packages, plus our processes.

``python -m stack run`` starts whatever servers the environment does not point at, prepares the
database and topics, then supervises web, worker, beat, consumer and relay. ``python -m stack test``
does the same with separate data and ports and runs pytest. See docs/local-stack.md.
"""
