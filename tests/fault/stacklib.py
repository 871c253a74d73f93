"""A private local stack for a fault test that stops servers: its own
PostgreSQL, Redis and Kafka (deploy/local/stack) in a temporary folder on
free ports, migrated and loaded with the sample company by kactl. The shared
stack that other tests use is never touched.

    with PrivateStack(kactl) as st:      # up, migrated; os.environ points at it
        st.stop("postgres"); ...; st.start("postgres")
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STACK = os.path.join(ROOT, "deploy", "local", "stack")
SERVERS = ("postgres", "redis", "kafka")
# Held for CI runs of the whole suite; never handed to a private stack.
RESERVED_PORTS = {56632, 57579, 60292, 60293}


def _free_ports(n):
    """n distinct free loopback ports (held open together so none repeats)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in RESERVED_PORTS:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _shared_kafka_libs():
    """Kafka's jars fetched by the shared stack, so a private one skips Maven."""
    base = os.path.join(ROOT, ".stack", "kafka")
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            d = os.path.join(base, name)
            if name.startswith("libs-") and os.path.exists(os.path.join(d, ".complete")):
                return d
    return None


class PrivateStack:
    def __init__(self, kactl, name="outage"):
        self.kactl = kactl
        self.dir = tempfile.mkdtemp(prefix=f"ka-fault-stack-{name}-")
        os.chmod(self.dir, 0o755)  # PostgreSQL runs as its own user and keeps its data here
        pg, redis, kafka, controller, sasl, ssl = _free_ports(6)
        self.env = dict(os.environ, KA_STACK_DIR=self.dir, KA_PG_PORT=str(pg),
                        KA_REDIS_PORT=str(redis), KA_KAFKA_PORT=str(kafka),
                        KA_KAFKA_CONTROLLER_PORT=str(controller), KA_KAFKA_SASL_PORT=str(sasl),
                        KA_KAFKA_SSL_PORT=str(ssl))
        libs = _shared_kafka_libs()
        if libs:
            self.env["KA_KAFKA_LIBS"] = libs
        self.addresses = {
            "KA_PG_DSN": f"host=127.0.0.1 port={pg} dbname=ka_test user=ka",
            "KA_REDIS_HOST": "127.0.0.1", "KA_REDIS_PORT": str(redis),
            "KA_KAFKA_BROKERS": f"127.0.0.1:{kafka}",
        }
        self._saved = {}

    def _stack(self, *args, timeout=180):
        res = subprocess.run([STACK, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"stack {' '.join(args)}: {res.stderr.strip() or res.stdout}")
        return res.stdout

    def start(self, server):
        """Starts one server and waits until it answers."""
        t0 = time.monotonic()
        self._stack("start", server)
        return time.monotonic() - t0

    def stop(self, server):
        self._stack("stop", server)

    def kafka_pid(self):
        with open(os.path.join(self.dir, "kafka", "kafka.pid")) as f:
            return int(f.read().split()[0])

    def pause_kafka(self):
        """A hung broker: connections stay open, nothing is answered."""
        os.kill(self.kafka_pid(), signal.SIGSTOP)

    def resume_kafka(self):
        os.kill(self.kafka_pid(), signal.SIGCONT)

    def up(self):
        t0 = time.monotonic()
        # Kafka takes the longest: it starts while PostgreSQL is migrated.
        kafka_error = []

        def start_kafka():
            try:
                self.start("kafka")
            except Exception as e:  # re-raised below, in this thread
                kafka_error.append(e)

        kafka = threading.Thread(target=start_kafka)
        kafka.start()
        try:
            self.start("postgres")
            self.start("redis")
            # Point this process (the harness, psql, redis-cli, and the workers
            # it starts) at the private servers.
            for k, v in self.addresses.items():
                self._saved[k] = os.environ.get(k)
                os.environ[k] = v
            for cmd in (["migrate"], ["load", "sample"]):
                res = subprocess.run([self.kactl, *cmd], capture_output=True, text=True,
                                     timeout=180)
                if res.returncode != 0:
                    raise RuntimeError(f"kactl {' '.join(cmd)}: {res.stderr.strip()}")
        finally:
            kafka.join()  # also on failure: down() must not race the start
        if kafka_error:
            raise kafka_error[0]
        print(f"private stack in {self.dir} up and migrated in {time.monotonic() - t0:.1f} s "
              f"(PostgreSQL {self.env['KA_PG_PORT']}, Redis {self.env['KA_REDIS_PORT']}, "
              f"Kafka {self.env['KA_KAFKA_PORT']})", flush=True)
        return self

    def down(self):
        try:
            if os.path.exists(os.path.join(self.dir, "kafka", "kafka.pid")):
                try:
                    self.resume_kafka()  # a paused broker cannot shut down
                except (OSError, ValueError):
                    pass
            self._stack("down")
        finally:
            for k, v in self._saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            pg_data_file = os.path.join(self.dir, "pg-data")
            if os.path.exists(pg_data_file):
                with open(pg_data_file) as f:
                    data = f.read().strip()
                if data and not data.startswith(self.dir):
                    shutil.rmtree(os.path.dirname(data), ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc):
        self.down()
