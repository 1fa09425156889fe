"""press-digest: government press releases turned into short personal Telegram digests.

The package is laid out as the pipeline it runs:

- ``feeds/``     fetch, parse and store press releases (stage 1)
- ``matching/``  the query language, topic catalogue and the matcher (stage 2)
- ``digest/``    schedules and digest composition (stage 3)
- ``delivery/``  the durable outbox and the rate-limited sender (stage 4)
- ``telegram/``  the front door: commands, buttons, the Application
"""

__version__ = "0.1.0"
