"""The study index, the only place besides storage.query that talks SQL: tables, migrations,
the columns kept from each data set, the join ladder, writes and reads."""
