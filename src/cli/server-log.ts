// The server's log on standard error: JSON lines (one object each, for a log shipper) unless standard error is a
// terminal, where a person reads it: then one short line each, `12:04:05 WARN message key=value`.
import { Writable } from 'node:stream';
import type { Logger } from '../core/logger.js';

const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** pino's own fields, shown in the line's head or not at all. */
const own = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

/** One pino JSON line as a person reads it. */
export function humanLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toTimeString().slice(0, 8) : '';
  const level = levels[entry.level as number] ?? String(entry.level);
  const fields = Object.entries(entry)
    .filter(([key]) => !own.has(key))
    .map(([key, value]) => {
      if (key === 'err' && typeof value === 'object' && value !== null) {
        const err = value as { message?: unknown };
        return `err=${JSON.stringify(String(err.message))}`;
      }
      return `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
    });
  return [time, level.padEnd(5), typeof entry.msg === 'string' ? entry.msg : '', ...fields]
    .filter((part) => part !== '')
    .join(' ');
}

function humanStream(): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString('utf8');
      let lines = '';
      for (const line of text.split('\n')) if (line !== '') lines += `${humanLine(line)}\n`;
      process.stderr.write(lines, () => done());
    },
  });
}

/** The server's log: pino is loaded with the role it logs for, not by every command. */
export async function loggerOf(level: string): Promise<Logger> {
  const { default: pino } = await import('pino');
  const logger = pino({ level }, process.stderr.isTTY ? humanStream() : pino.destination(2));
  return logger;
}
