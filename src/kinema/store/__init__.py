"""The durable store: SQL schema, migrations and the queries that read and change it."""
