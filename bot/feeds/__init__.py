"""Stage 1: fetch feeds (conditional GET, hard limits), parse them safely, store releases."""
