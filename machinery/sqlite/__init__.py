"""SQLite plumbing shared by the SQLite broker (``brokers/sqlite.py``) and the SQLite result backend
(``backends/sqlite.py``), below both: the connection pool and URL options (``pool``) and wake-ups
between processes (``wakeup``). It imports neither brokers nor backends."""
