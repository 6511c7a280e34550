"""What makes a large catch-up fast, none of it needed for it to be right.

- :mod:`.decoder`: large received batches decoded in a worker process, on
  another core, while this process stores the batch before;
- :mod:`.worker`: that process (``python -S -m node.sync.catchup.worker``);
- :mod:`.transfer`: the compact form in which it sends back what it decoded, a
  private format between a node and its own worker;
- :mod:`.tuning`: the interpreter's settings during a catch-up (the cycle
  collector, the thread switch interval, ``gc.freeze``), applied by the owner of
  the process (``duban run``, ``duban demo``), never by a node itself.

Decoding in place (``sync.decode_processes`` 0) and no tuning give the same
results, slower. What each piece gave is in docs/performance.md.

This package imports nothing here: the worker imports through it, and its
start is on a catch-up's critical path.
"""
