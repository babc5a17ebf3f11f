#!/usr/bin/env node
// Writes the README's generated references from the code itself, so that they cannot drift from it:
// the function settings from the JSON schema of savassan.json, the CLI reference from the commands (their arguments, options and defaults), the HTTP API reference from the
// OpenAPI document the server serves, and the error codes from the catalogue. `--check` only says whether the
// README is up to date (the test suite runs it). Needs `npm run build`.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const readmePath = join(root, 'README.md');
const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);

/** `|` breaks a Markdown table cell. */
const cell = (text) => String(text).replaceAll('|', '\\|').replaceAll('\n', ' ');

function commandPath(command) {
  const names = [];
  for (let c = command; c !== null && c !== undefined; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function* commandsOf(command) {
  for (const sub of command.commands) {
    if (sub.commands.length === 0) yield sub;
    yield* commandsOf(sub);
  }
}

async function cliReference() {
  const { buildProgram } = await dist('cli/main.js');
  const program = buildProgram();
  const lines = [];
  for (const command of commandsOf(program)) {
    const help = command.createHelp();
    const args = help.visibleArguments(command).map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`));
    lines.push(`#### \`${commandPath(command)}${args.length > 0 ? ` ${args.join(' ')}` : ''}\``, '');
    lines.push(`${command.description()}.`.replace(/\.\.$/, '.'), '');
    const options = help.visibleOptions(command).filter((o) => o.long !== '--help');
    if (options.length > 0) {
      lines.push('| option | meaning | default |', '| --- | --- | --- |');
      for (const option of options) {
        // A default that depends on the machine (the host name) is shown as its description.
        const value = option.defaultValueDescription ?? option.defaultValue;
        const fallback =
          value === undefined || option.negate ? '' : `\`${Array.isArray(value) ? value.join(',') : value}\``;
        const env = option.envVar === undefined ? '' : ` (env \`${option.envVar}\`)`;
        const choices = option.argChoices === undefined ? '' : ` (${option.argChoices.join(', ')})`;
        lines.push(`| \`${cell(option.flags)}\` | ${cell(option.description)}${choices}${env} | ${fallback} |`);
      }
      lines.push('');
    }
  }
  return lines.join('\n');
}

function statusesOf(operation) {
  return Object.keys(operation.responses ?? {}).sort();
}

async function apiReference() {
  const { startEmbedded } = await dist('embedded/embedded-platform.js');
  const dataDir = await mkdtemp(join(tmpdir(), 'savassan-docs-'));
  const platform = await startEmbedded({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    sandbox: 'process',
    stemCells: false,
  });
  try {
    const document = await (await fetch(`${platform.url}/v1/openapi.json`)).json();
    const lines = ['| route | what | answers |', '| --- | --- | --- |'];
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const route = `${method.toUpperCase()} ${path}`;
        lines.push(`| \`${route}\` | ${cell(operation.summary ?? '')} | ${statusesOf(operation).join(', ')} |`);
      }
    }
    return lines.join('\n');
  } finally {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function errorReference() {
  const { errorCodes } = await dist('core/errors.js');
  const lines = ['| code | status | meaning |', '| --- | --- | --- |'];
  for (const [code, { status, description }] of Object.entries(errorCodes))
    lines.push(`| \`${code}\` | ${status} | ${cell(description)} |`);
  return lines.join('\n');
}

/** The settings of `savassan.json` (and of a deploy), from its JSON schema. */
async function settingsReference() {
  const schema = JSON.parse(await readFile(join(root, 'schemas', 'savassan.schema.json'), 'utf8'));
  const lines = ['| field | type | range | meaning |', '| --- | --- | --- | --- |'];
  for (const [field, property] of Object.entries(schema.properties)) {
    if (field === '$schema') continue;
    const types = property.enum
      ? property.enum.filter((v) => v !== null).map((v) => `\`"${v}"\``)
      : [property.type].flat().filter((t) => t !== 'null');
    const range =
      property.minimum !== undefined
        ? `${property.minimum}–${property.maximum}`
        : property.maxItems !== undefined
          ? `at most ${property.maxItems}`
          : '';
    lines.push(`| \`${field}\` | ${types.join(', ')} | ${range} | ${cell(property.description)} |`);
  }
  return lines.join('\n');
}

/** `text` with the part between `<!-- NAME:start -->` and `<!-- NAME:end -->` replaced. */
function replaceSection(text, name, body) {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md has no ${start} … ${end} section`);
  return `${text.slice(0, from + start.length)}\n\n${body.trim()}\n\n${text.slice(to)}`;
}

/** Prettier's Markdown formatting, so that the generated text is what `npm run format` would leave. */
async function formatted(text) {
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(readmePath)) ?? {};
  return prettier.format(text, { ...options, filepath: readmePath });
}

const readme = await readFile(readmePath, 'utf8');
let next = readme;
next = replaceSection(next, 'cli', await cliReference());
next = replaceSection(next, 'api', await apiReference());
next = replaceSection(next, 'errors', await errorReference());
next = replaceSection(next, 'settings', await settingsReference());
next = await formatted(next);
if (process.argv.includes('--check')) {
  if (next !== readme) {
    process.stderr.write('README.md is out of date with the code: run "npm run docs"\n');
    process.exit(1);
  }
} else if (next !== readme) {
  await writeFile(readmePath, next);
  process.stdout.write('README.md updated\n');
}
