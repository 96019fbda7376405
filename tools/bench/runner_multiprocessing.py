#!/usr/bin/env python3
"""The Python peer of //runner:runner_benchmark: N trivial tasks, at most 2 at a
time, the way Easypy runs them with multiprocessing: one fork-context Process
per task, one log file per task (logging.FileHandler), the result back through
a multiprocessing.Queue.

Prints one JSON line: {"tasks": N, "seconds": S, "seconds_per_task": S/N}.
Usage: runner_multiprocessing.py [--tasks N] [--parallel P] [--dir DIR]
"""
import argparse
import json
import logging
import multiprocessing
import os
import tempfile
import time


def task_body(task_id, log_dir, results):
    log = logging.getLogger("task")
    log.handlers.clear()
    handler = logging.FileHandler(os.path.join(log_dir, "TaskLog.%s" % task_id))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(process)d %(filename)s:%(lineno)d] %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("task %s running", task_id)
    results.put((task_id, "passed"))
    handler.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")
    log_dir = args.dir or tempfile.mkdtemp(prefix="runner_mp_")
    results = context.Queue()
    start = time.perf_counter()
    running = []
    collected = {}
    next_task = 0
    while next_task < args.tasks or running:
        while next_task < args.tasks and len(running) < args.parallel:
            process = context.Process(
                target=task_body, args=("t%d" % next_task, log_dir, results))
            process.start()
            running.append(process)
            next_task += 1
        # Wait for one task to end (multiprocessing.connection.wait on sentinels).
        multiprocessing.connection.wait([p.sentinel for p in running])
        for process in [p for p in running if not p.is_alive()]:
            process.join()
            running.remove(process)
        while not results.empty():
            task_id, result = results.get()
            collected[task_id] = result
    while len(collected) < args.tasks:
        task_id, result = results.get(timeout=30)
        collected[task_id] = result
    seconds = time.perf_counter() - start
    assert all(r == "passed" for r in collected.values())
    print(json.dumps({"tasks": args.tasks, "seconds": seconds,
                      "seconds_per_task": seconds / args.tasks}))


if __name__ == "__main__":
    import multiprocessing.connection  # noqa: F401  (wait)
    main()
