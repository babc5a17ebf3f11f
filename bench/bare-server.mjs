// The baseline: a bare Node http server that calls the same handlers in-process (no sandbox, no pool): the echo
// function's on /echo, the no-op's on every other path.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const functions = {
  noop: require('./functions/noop/index.cjs').handler,
  echo: require('./functions/echo/index.cjs').handler,
};
const contexts = Object.fromEntries(
  Object.keys(functions).map((name) => [
    name,
    { functionName: name, functionVersion: '1', getRemainingTimeInMillis: () => 30000 },
  ]),
);

const server = createServer((req, res) => {
  const name = req.url === '/echo' ? 'echo' : 'noop';
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    functions[name](JSON.parse(body || '{}'), contexts[name]).then(
      (result) => {
        const text = JSON.stringify(result);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      },
      (err) => {
        res.writeHead(502);
        res.end(String(err));
      },
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
