#!/usr/bin/env node
// Checks what `npm start` and `npm test` need beyond `npm ci`. Embedded mode needs only Node itself;
// later backends and sandbox runtimes add their system packages here (installed with apt-get as root).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(`Savassan needs Node.js >= 20.19; this is ${process.versions.node}.`);
  process.exit(1);
}
