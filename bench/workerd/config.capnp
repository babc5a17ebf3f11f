# workerd, the bench's peer (bench/workerd.ts starts it): the no-op and echo functions as module workers, each on
# its own loopback socket. Port 0: workerd picks free ports and reports them on its control fd.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "noop", worker = .noopWorker),
    (name = "echo", worker = .echoWorker),
  ],
  sockets = [
    (name = "noop", address = "127.0.0.1:0", http = (), service = "noop"),
    (name = "echo", address = "127.0.0.1:0", http = (), service = "echo"),
  ],
);

const noopWorker :Workerd.Worker = (
  modules = [(name = "noop.js", esModule = embed "noop.js")],
  compatibilityDate = "2026-11-01",
);

const echoWorker :Workerd.Worker = (
  modules = [(name = "echo.js", esModule = embed "echo.js")],
  compatibilityDate = "2026-11-01",
);
