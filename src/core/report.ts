/** The facts of one invocation a REPORT line shows, as the API and the invoke answer's headers carry them. */
export interface ReportFacts {
  id: string;
  durationMs: number;
  initMs: number | null;
  peakMemoryBytes: number | null;
  /** The version's memory limit; null when the version is gone. */
  memoryMB: number | null;
  start: 'cold' | 'warm';
}

/**
 * One line per invocation, in the shape `sam local` and Lambda's logs print:
 * `REPORT 5f0c… Duration: 3.20 ms Init: 41 ms Memory: 52/256 MB start: cold`.
 */
export function reportLine(facts: ReportFacts): string {
  const parts = [`REPORT ${facts.id}`, `Duration: ${facts.durationMs.toFixed(2)} ms`];
  if (facts.initMs !== null) parts.push(`Init: ${Math.round(facts.initMs)} ms`);
  const used = facts.peakMemoryBytes === null ? '?' : String(Math.ceil(facts.peakMemoryBytes / (1024 * 1024)));
  parts.push(`Memory: ${used}/${facts.memoryMB ?? '?'} MB`, `start: ${facts.start}`);
  return parts.join(' ');
}
