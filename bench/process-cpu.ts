// CPU time of a process, for figures such as the gateway's CPU per request: read /proc/<pid>/stat before and after
// a run and divide the difference by the requests served.
import { readFile } from 'node:fs/promises';

/** Linux reports utime and stime in clock ticks of USER_HZ, which is 100 on every architecture Node runs on. */
const ticksPerSecond = 100;

/**
 * CPU seconds (user + system) a running process has used so far, from `/proc/<pid>/stat`: every thread of it, or
 * with `mainThread` only its main thread (`/proc/<pid>/task/<pid>/stat`: the event loop the process started on).
 * Its children are not counted. Resolution is one clock tick (10 ms): measure runs of at least a few seconds of CPU.
 */
export async function processCpuSeconds(pid: number, mainThread = false): Promise<number> {
  const stat = await readFile(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces or parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the command name.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unexpected /proc/${pid}/stat: ${stat}`);
  return (utime + stime) / ticksPerSecond;
}

/**
 * What `run` returns, and the microseconds of CPU per request `pid` used while it served `requests` requests: all
 * its threads, and its main thread alone.
 */
export async function withCpuPerRequest<T>(
  pid: number,
  requests: number,
  run: () => Promise<T>,
): Promise<{ value: T; cpuMicrosPerRequest: number; mainThreadMicrosPerRequest: number }> {
  const read = () => Promise.all([processCpuSeconds(pid), processCpuSeconds(pid, true)]);
  const [before, mainBefore] = await read();
  const value = await run();
  const [after, mainAfter] = await read();
  return {
    value,
    cpuMicrosPerRequest: ((after - before) * 1e6) / requests,
    mainThreadMicrosPerRequest: ((mainAfter - mainBefore) * 1e6) / requests,
  };
}
