"""spot-redis's own Python: the event contract shared by every part, and the host agent (spot_redis.agent)."""
