"""A worker (--kind) under valgrind: it processes a stream (valid events, duplicates,
stale ones, unauthorized owner changes that raise alerts and dead letters),
is stopped with SIGTERM, and valgrind must report no memory error and no
definite or indirect leak (--error-exitcode). The state is compared with the
oracle as in every fault test, so the run under valgrind did the real work.
The forecast worker (--kind forecast) recomputes and publishes what an
opportunity worker, running beside it unobserved, applies from a stream of
deals, confirmations and managers' adjustments.

Registered for plain builds only: valgrind cannot run a sanitized binary
(tests/run runs this label on the plain build too)."""
import os
import signal
import subprocess
import sys

import faultlib
from faultlib import Env, Run, Scenario, report, seed_of

VALGRIND_EXIT = 99


class ValgrindWorker(faultlib.Worker):
    """The harness's worker, started under valgrind with its log kept apart."""

    def __init__(self, run, kind, valgrind):
        super().__init__(run, kind, 0, {})
        self.valgrind = valgrind
        self.vg_log = os.path.join(run.dir, f"{kind}-valgrind.log")

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.valgrind, "--quiet", f"--error-exitcode={VALGRIND_EXIT}", "--leak-check=full",
             "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
             "--num-callers=30", f"--log-file={self.vg_log}", self.run.env.bins[self.kind]],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        return self


def main():
    ap = Env.parser(__doc__)
    ap.add_argument("--valgrind", required=True)
    ap.add_argument("--kind", default="opportunity")
    args = ap.parse_args()
    env = Env.from_environ(args)
    seed = seed_of(args)
    with Run(env, "valgrind") as run:
        forecast = args.kind == "forecast"
        kinds = ("opportunity",) if forecast else (args.kind,)
        sc = Scenario(run, seed, n_events=150, kinds=kinds, duplicates=0.05, stale=0.05,
                      unauthorized=0.05, forecast=forecast)
        w = ValgrindWorker(run, args.kind, args.valgrind)
        run.workers.append(w)
        w.start()
        if forecast:
            run.worker("opportunity").start()
        run.produce(sc.events)
        run.wait_caught_up(kinds + (args.kind,) if forecast else kinds, timeout=240)
        assert w.alive(), f"the worker under valgrind died: {w.log_path}, {w.vg_log}"
        state = run.compare(sc)
        down = run.check_downstream(sc)
        w.proc.send_signal(signal.SIGTERM)
        rc = w.proc.wait(180)
        with open(w.vg_log, errors="replace") as f:
            vg = f.read()
        if rc != 0:
            sys.stderr.write(vg[-20000:])
        assert rc != VALGRIND_EXIT, f"valgrind found errors or leaks (log {w.vg_log})"
        assert rc == 0, f"{args.kind} worker exited {rc} after SIGTERM ({w.log_path})"
        print(f"{args.kind} worker under valgrind: {state.events_compared} events, "
              f"{state.rows_compared} rows compared, {down.distinct} published ids; "
              f"clean exit, valgrind log {len(vg)} bytes", flush=True)
        # faults: the SIGTERM the worker drained on
        report(f"valgrind_{args.kind}", 1, state.events_compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
