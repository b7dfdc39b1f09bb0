"""DNS steps: serve a second domain, change TTLs, check answers (PowerDNS SQL or RFC 2136)."""
