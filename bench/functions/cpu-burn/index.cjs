// Holds one core for `event.ms` milliseconds (10 s by default): a timed spin, so that a sandbox keeps its core busy
// for the whole time however fast the machine is.
exports.handler = async (event) => {
  const until = Date.now() + (event.ms ?? 10_000);
  let x = 0;
  while (Date.now() < until) {
    for (let i = 0; i < 100_000; i++) x = (Math.imul(x, 31) + i) | 0;
  }
  return { ok: true, x };
};
