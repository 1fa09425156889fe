"""Stage 2: the query language, the topic catalogue, and matching releases to topics once."""
