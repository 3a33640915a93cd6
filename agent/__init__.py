"""The decision agent: goals planned as steps over governed tools, gated by the policy
engine, each decision with one record. Pure Python (no Bytewax, Kafka or Redis): the
operators run it in Bytewax state, the connectors give it the store's rows."""
