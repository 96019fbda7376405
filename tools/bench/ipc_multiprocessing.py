#!/usr/bin/env python3
"""Python multiprocessing peers for //ipc:ipc_benchmark (run on the same machine).

  python3 tools/bench/ipc_multiprocessing.py [--seconds 2]

Measures, with the 'fork' start method as pyATS uses:
  Queue_64B           multiprocessing.Queue, one producer process, one consumer
                      process, 64-byte bytes messages: messages/s
  Pipe_RoundTrip_64B  multiprocessing.Pipe(), 64-byte send_bytes/recv_bytes
                      echoed by a child: round trips/s
Prints one line per benchmark: name, items/s, and the per-item time.
"""

import argparse
import multiprocessing as mp
import time

MESSAGE = b"x" * 64


def consumer(queue, done):
    count = 0
    while True:
        item = queue.get()
        if item is None:
            break
        count += 1
    done.put(count)


def queue_throughput(ctx, seconds):
    queue = ctx.Queue(maxsize=10000)
    done = ctx.Queue()
    child = ctx.Process(target=consumer, args=(queue, done))
    child.start()
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            queue.put(MESSAGE)
        sent += 1000
        if time.perf_counter() >= deadline:
            break
    queue.put(None)
    received = done.get()
    elapsed = time.perf_counter() - start
    child.join()
    assert received == sent, (received, sent)
    return sent / elapsed


def echo(conn):
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)


def pipe_round_trip(ctx, seconds):
    parent, child_end = ctx.Pipe()
    child = ctx.Process(target=echo, args=(child_end,))
    child.start()
    child_end.close()
    trips = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            parent.send_bytes(MESSAGE)
            parent.recv_bytes()
        trips += 100
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    parent.send_bytes(b"")
    child.join()
    return trips / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="time per benchmark (default 2)")
    args = parser.parse_args()
    ctx = mp.get_context("fork")
    for name, bench in (("Queue_64B", queue_throughput),
                        ("Pipe_RoundTrip_64B", pipe_round_trip)):
        rate = bench(ctx, args.seconds)
        print(f"python_multiprocessing_{name:<20} {rate:12.0f} items/s "
              f"({1e9 / rate:9.0f} ns/item)")


if __name__ == "__main__":
    main()
