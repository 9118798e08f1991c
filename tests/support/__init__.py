"""What the test suites share, one module per concern:

- ``services``: the RabbitMQ and Redis the tests use, and skipping (or failing) when they are absent;
- ``waiting``: ``TIMEOUT``, the one bound on how long a test waits for something, and ``eventually``;
- ``names``: names unique to a test, for queues and keys on shared servers;
- ``workers``: a worker in this process's threads for a ``with`` block;
- ``processes``: ``machinery worker`` processes (``worker_command``, ``process_env``, ``WorkerProcess``);
- ``worker_app``: the one App those processes run, with the example tasks and a few for fault tests;
- ``effects``: the side channel in which its ``record`` task notes what ran, duplicates included;
- ``amqp``: AMQP brokers and configs on topology unique to a test, deleted when the tests end.
"""
