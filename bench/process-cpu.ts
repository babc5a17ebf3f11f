// CPU time of a process, for figures such as the gateway's CPU per request: read /proc/<pid>/stat before and after
// a run and divide the difference by the requests served.
import { readFile } from 'node:fs/promises';

/** Linux reports utime and stime in clock ticks of USER_HZ, which is 100 on every architecture Node runs on. */
const ticksPerSecond = 100;

/**
 * CPU seconds (user + system, every thread) a running process has used so far, from `/proc/<pid>/stat`; its
 * children are not counted. Resolution is one clock tick (10 ms): measure runs of at least a few seconds of CPU.
 */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces or parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the command name.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unexpected /proc/${pid}/stat: ${stat}`);
  return (utime + stime) / ticksPerSecond;
}

/** What `run` returns, and the microseconds of `pid`'s CPU per request while it served `requests` requests. */
export async function withCpuPerRequest<T>(
  pid: number,
  requests: number,
  run: () => Promise<T>,
): Promise<{ value: T; cpuMicrosPerRequest: number }> {
  const before = await processCpuSeconds(pid);
  const value = await run();
  const after = await processCpuSeconds(pid);
  return { value, cpuMicrosPerRequest: ((after - before) * 1e6) / requests };
}
