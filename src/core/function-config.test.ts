import assert from 'node:assert/strict';
import { it } from 'node:test';
import { PlatformError } from './errors.js';
import { compileFunctionConfig, functionLimits, startupEnv, validateFunctionName } from './function-config.js';

const rejects = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof PlatformError && pattern.test(err.message));

it('defaults every setting', () => {
  assert.deepEqual(compileFunctionConfig({}), {
    handler: 'index.handler',
    runtime: 'nodejs20',
    env: {},
    timeoutSeconds: functionLimits.timeoutSeconds.default,
    memoryMB: functionLimits.memoryMB.default,
    maxInstances: functionLimits.maxInstances.default,
    minInstances: 0,
    idleSeconds: functionLimits.idleSeconds.default,
    network: false,
    allowNet: [],
    secrets: {},
    retries: 2,
    maxEventAgeSeconds: 21600,
    retryDelaySeconds: 60,
    asyncConcurrency: 10,
    onSuccess: null,
    onFailure: null,
  });
});

it('takes destinations as a function, queue:NAME or an http(s) URL without credentials', () => {
  assert.equal(compileFunctionConfig({ onSuccess: 'audit' }).onSuccess, 'audit');
  assert.equal(compileFunctionConfig({ onFailure: 'queue:failed' }).onFailure, 'queue:failed');
  assert.equal(
    compileFunctionConfig({ onFailure: 'https://ops.example/hook?t=1' }).onFailure,
    'https://ops.example/hook?t=1',
  );
  rejects(
    () => compileFunctionConfig({ onFailure: 'https://u:p@ops.example/' }),
    /INVALID_CONFIG.*user name or password/,
  );
  rejects(() => compileFunctionConfig({ onSuccess: 'Not A Name' }), /INVALID_CONFIG.*onSuccess: invalid function name/);
  rejects(() => compileFunctionConfig({ onSuccess: 'queue:' }), /INVALID_CONFIG.*invalid queue name/);
  rejects(() => compileFunctionConfig({ retries: 3 }), /retries must be an integer from 0 to 2/);
  rejects(() => compileFunctionConfig({ maxEventAgeSeconds: 59 }), /maxEventAgeSeconds must be an integer from 60/);
});

it('takes secrets as variable → secret name, sorted, never a variable that env sets too', () => {
  const config = compileFunctionConfig({ env: { MODE: 'x' }, secrets: { Z_KEY: 'STRIPE', A_KEY: 'db_password' } });
  assert.deepEqual(Object.entries(config.secrets), [
    ['A_KEY', 'db_password'],
    ['Z_KEY', 'STRIPE'],
  ]);
  rejects(() => compileFunctionConfig({ env: { K: 'v' }, secrets: { K: 'S' } }), /INVALID_CONFIG.*K is given both/);
  rejects(
    () => compileFunctionConfig({ secrets: { NODE_OPTIONS: 'S' } }),
    /NODE_OPTIONS is read by Node as it starts, before secrets are set/,
  );
  rejects(() => compileFunctionConfig({ secrets: { 'BAD-KEY': 'S' } }), /INVALID_CONFIG.*"BAD-KEY" is not valid/);
  rejects(() => compileFunctionConfig({ secrets: { SAVASSAN_X: 'S' } }), /INVALID_CONFIG.*reserved/);
  rejects(() => compileFunctionConfig({ secrets: { K: 'not-a-name' } }), /INVALID_CONFIG.*K: invalid secret name/);
  rejects(() => compileFunctionConfig({ secrets: { K: 3 as unknown as string } }), /INVALID_CONFIG/);
  rejects(() => compileFunctionConfig({ secrets: ['S'] as unknown as Record<string, string> }), /INVALID_CONFIG/);
  const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`K${i}`, 'S']));
  rejects(() => compileFunctionConfig({ secrets: many }), /INVALID_CONFIG.*at most 64 secrets/);
});

it('takes --allow-net CIDRs only with network, strictly, canonical and sorted', () => {
  const config = compileFunctionConfig({ network: true, allowNet: ['192.168.5.0/24', '10.1.2.3/32', '10.1.2.3/32'] });
  assert.deepEqual(config.allowNet, ['10.1.2.3/32', '192.168.5.0/24']);
  assert.deepEqual(compileFunctionConfig({ network: true, allowNet: ['0.0.0.0/0'] }).allowNet, ['0.0.0.0/0']);
  rejects(() => compileFunctionConfig({ allowNet: ['10.0.0.0/8'] }), /INVALID_CONFIG.*allowNet needs network: true/);
  for (const bad of [
    '10.1.2.3/24',
    '10.1.2.0',
    '010.1.2.0/24',
    '10.1.2.0/33',
    '256.0.0.0/8',
    'fd00::/8',
    ' 10.0.0.0/8',
  ]) {
    rejects(() => compileFunctionConfig({ network: true, allowNet: [bad] }), /INVALID_CONFIG.*allowNet entries/);
  }
  rejects(() => compileFunctionConfig({ network: true, allowNet: [8 as unknown as string] }), /allowNet entries/);
  rejects(() => compileFunctionConfig({ network: true, allowNet: '10.0.0.0/8' as unknown as string[] }), /array/);
  const many = Array.from({ length: 33 }, (_, i) => `10.0.${i}.0/24`);
  rejects(() => compileFunctionConfig({ network: true, allowNet: many }), /at most 32/);
});

it('takes the nodejs24 runtime and network access, and refuses anything else', () => {
  const config = compileFunctionConfig({ runtime: 'nodejs24', network: true });
  assert.equal(config.runtime, 'nodejs24');
  assert.equal(config.network, true);
  assert.throws(() => compileFunctionConfig({ runtime: 'nodejs18' }), /INVALID_CONFIG.*nodejs20, nodejs24/);
  assert.throws(() => compileFunctionConfig({ network: 'yes' as unknown as boolean }), /INVALID_CONFIG.*network/);
});

it('accepts nested handlers and valid env', () => {
  const config = compileFunctionConfig({ handler: 'src/app.main', env: { A_B: 'ünïcode', x1: '' } });
  assert.equal(config.handler, 'src/app.main');
  assert.equal(config.env.A_B, 'ünïcode');
});

it('rejects bad values with messages naming the field', () => {
  rejects(() => compileFunctionConfig({ timeoutSeconds: 0 }), /timeoutSeconds must be an integer from 1 to 900/);
  rejects(() => compileFunctionConfig({ memoryMB: 1.5 }), /memoryMB/);
  rejects(() => compileFunctionConfig({ maxInstances: 2, minInstances: 3 }), /minInstances \(3\) cannot exceed/);
  rejects(() => compileFunctionConfig({ handler: 'index' }), /handler must look like/);
  rejects(() => compileFunctionConfig({ handler: '../etc/passwd.x' }), /handler must look like/);
  rejects(() => compileFunctionConfig({ runtime: 'python3' }), /runtime must be one of/);
  rejects(() => compileFunctionConfig({ env: { 'A-B': 'x' } }), /not valid/);
  rejects(() => compileFunctionConfig({ env: { SAVASSAN_SOCKET: 'x' } }), /reserved/);
  rejects(() => compileFunctionConfig({ env: { BIG: 'x'.repeat(5000) } }), /over the 4096-byte limit/);
});

it('takes NODE_OPTIONS that Node takes there, and says why it refuses the rest', () => {
  for (const options of [
    '--enable-source-maps --stack-trace-limit=50',
    '--stack_trace_limit=7 -r ./setup.js --no-inspect',
    '--require "./with space.js" --title=fn',
    '',
  ]) {
    assert.equal(compileFunctionConfig({ env: { NODE_OPTIONS: options } }).env['NODE_OPTIONS'], options);
  }
  for (const inspect of ['--inspect', '--inspect-brk=0.0.0.0:9229', '--inspect_port=1234', '--debug-port=1']) {
    rejects(
      () => compileFunctionConfig({ env: { NODE_OPTIONS: `--enable-source-maps ${inspect}` } }),
      /NODE_OPTIONS may not hold (--inspect|--debug-port)\S*: it opens the inspector/,
    );
  }
  rejects(
    () => compileFunctionConfig({ env: { NODE_OPTIONS: '--max-old-space-size=4096' } }),
    /--max-old-space-size: the platform sizes the V8 heap from the function's memoryMB/,
  );
  rejects(
    () => compileFunctionConfig({ env: { NODE_OPTIONS: '--experimental-permission --allow-fs-read=*' } }),
    /--experimental-permission: Node's permission model/,
  );
  rejects(
    () => compileFunctionConfig({ env: { NODE_OPTIONS: '--report-uncaught-exception --report-filename=stderr' } }),
    /--report-uncaught-exception: a diagnostic report holds the whole environment/,
  );
  rejects(() => compileFunctionConfig({ env: { NODE_OPTIONS: '--expose-internals' } }), /Node does not take it there/);
  rejects(() => compileFunctionConfig({ env: { NODE_OPTIONS: 'setup.js' } }), /"setup.js", which is not an option/);
  rejects(() => compileFunctionConfig({ env: { NODE_OPTIONS: '-r "./x.js' } }), /unterminated quoted string/);
});

it('picks the variables Node reads as it starts out of the env', () => {
  const config = compileFunctionConfig({ env: { TZ: 'Asia/Seoul', NODE_PATH: 'lib', UV_THREADPOOL_SIZE: '8' } });
  assert.deepEqual(startupEnv(config), { NODE_PATH: 'lib', UV_THREADPOOL_SIZE: '8' });
  assert.deepEqual(startupEnv(compileFunctionConfig({ env: { TZ: 'Asia/Seoul' } })), {});
});

it('validates function names', () => {
  assert.equal(validateFunctionName('hello-2'), 'hello-2');
  for (const bad of ['', 'Hello', '2x', 'a_b', 'a'.repeat(64), 'a/b', '../x', 42]) {
    rejects(() => validateFunctionName(bad), /invalid function name/);
  }
});
