// About 1 ms of CPU per call on the bench machine (2 vCPU AMD EPYC): a fixed amount of work, not a timed spin, so a
// sandbox that is descheduled does not burn less.
const ITERATIONS = 600_000;

exports.handler = async (event) => {
  let x = 0;
  for (let i = 0; i < ITERATIONS; i++) x = (Math.imul(x, 31) + i) | 0;
  return { ok: true, n: event.n ?? 0, x };
};
