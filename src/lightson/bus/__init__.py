"""The message broker between the distributed roles (NATS with JetStream, through ``nats-py``).

Gateways hold charger connections, workers own shards of sites, API servers answer people;
PostgreSQL is the system of record and the broker carries what must move between them now:
commands to whichever gateway holds a station, wake-ups to whichever worker owns a site, and
the site leases. The single-process ``lightson serve`` uses none of it.
"""
