"""Cold start under a local runtime API stand-in: for each binary given,
RUNS times, start the process with AWS_LAMBDA_RUNTIME_API pointing here and
time process start -> its first GET /2018-06-01/runtime/invocation/next
(the moment the function is ready for an event; everything before it is
init). The process is killed once it asks. Prints one line per binary:
`NAME median_ms=M raw_ms=a,b,...`."""
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

asked = threading.Event()
asked_at = [0.0]


class RuntimeApi(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next") and not asked.is_set():
            asked_at[0] = time.perf_counter()
            asked.set()
        # Hold the long poll, as the real API does with no event waiting.
        time.sleep(2)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    runs = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ)
    # Lambda sets neither; this machine may (they change which CA files
    # TLS setup reads: see loader/src/ca_bundle.rs).
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_REGION": "us-east-1",
    })
    for spec in sys.argv[2:]:
        name, path = spec.split("=", 1)
        times = []
        for _ in range(runs):
            asked.clear()
            start = time.perf_counter()
            p = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if not asked.wait(10):
                p.kill()
                sys.exit(f"{name}: never asked for an event: {p.stderr.read()[:2000]!r}")
            times.append((asked_at[0] - start) * 1000)
            p.kill()
            p.wait()
        print(f"{name} median_ms={statistics.median(times):.2f} raw_ms={','.join(f'{t:.2f}' for t in times)}")


main()
