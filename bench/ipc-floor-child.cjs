// One process of the IPC floor's pool (see ipc-floor-server.mjs): connects to the server's Unix socket,
// reads one NDJSON event per line, runs the handler of bench/functions/<function>, writes "R<result json>\n" (or
// "E<message>\n"). Exits when the socket closes. Usage: node ipc-floor-child.cjs <socket path> [function=noop]
'use strict';
const { connect } = require('node:net');
const { handler } = require(`./functions/${process.argv[3] ?? 'noop'}/index.cjs`);

const context = {
  functionName: process.argv[3] ?? 'noop',
  functionVersion: '1',
  getRemainingTimeInMillis: () => 30000,
};
const conn = connect(process.argv[2]);
conn.setEncoding('utf8');
conn.setNoDelay(true);
let buffered = '';
conn.on('data', (chunk) => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\n')) !== -1) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    Promise.resolve()
      .then(() => handler(JSON.parse(line), context))
      .then(
        (result) => conn.write(`R${JSON.stringify(result)}\n`),
        (err) => conn.write(`E${String(err).replace(/\n/g, ' ')}\n`),
      );
  }
});
conn.on('close', () => process.exit(0));
conn.on('error', () => process.exit(1));
process.on('SIGTERM', () => process.exit(0));
