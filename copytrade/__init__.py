"""copytrade: copy a master trader's fills onto follower accounts."""
