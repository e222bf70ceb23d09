"""PostgreSQL and the local spool: the database and its embedded server, migrations,
partitions and retention, the endpoints store and cache, hit queries, and the group-
commit writer (batching, duplicate ledger, COPY rows, spool replay).
"""
